package decoy

import (
	"strings"
	"testing"
)

func TestCleanPath(t *testing.T) {
	for _, c := range []struct {
		in, out string
		ok      bool
	}{
		{"/", "/", true},
		{"/index.html", "/index.html", true},
		{"//a///b", "/a/b", true},
		{"/a/./b/", "/a/b/", true},
		{"/a/..", "/", true},
		{"/a/b/..", "/a/", true},
		{"/a/.", "/a/", true},
		{"/..", "", false},
		{"/a/../../b", "", false},
		{"*", "", false},
		{"", "", false},
		{"/a\x00b", "", false},
		{"/.env", "/.env", true},
	} {
		out, ok := cleanPath(c.in)
		if out != c.out || ok != c.ok {
			t.Errorf("cleanPath(%q) = %q, %v; want %q, %v", c.in, out, ok, c.out, c.ok)
		}
	}
	for p, want := range map[string]bool{"/.env": true, "/a/.git/config": true, "/.well-known/acme": false, "/.well-known": true, "/a.b/c": false, "/": false} {
		if denied(p) != want {
			t.Errorf("denied(%q) = %v", p, !want)
		}
	}
}

// FuzzCleanPath: a request's path, decoded, is network input. A clean
// path stays in the root and is already clean.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "//x/./y/", "/..", "/.well-known/x", "/a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		out, ok := cleanPath(p)
		if !ok {
			return
		}
		if !strings.HasPrefix(out, "/") || strings.Contains(out, "//") || strings.IndexByte(out, 0) >= 0 {
			t.Fatalf("cleanPath(%q) = %q", p, out)
		}
		for _, seg := range strings.Split(strings.Trim(out, "/"), "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("cleanPath(%q) = %q keeps a dot segment", p, out)
			}
		}
		if again, ok := cleanPath(out); !ok || again != out {
			t.Fatalf("cleanPath(%q) = %q, then %q", p, out, again)
		}
	})
}
