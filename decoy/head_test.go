package decoy

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestNginxHead(t *testing.T) {
	in := "HTTP/1.0 405 Method Not Allowed\r\nAccept-Ranges: bytes\r\nConnection: keep-alive\r\nContent-Length: 5\r\nContent-Type: text/html\r\nEtag: \"1-2\"\r\nServer: nginx\r\nDate: Mon, 01 Jan 2026 00:00:00 GMT\r\n\r\nhello"
	out, ok := nginxHead([]byte(in))
	want := "HTTP/1.1 405 Not Allowed\r\nServer: nginx\r\nDate: Mon, 01 Jan 2026 00:00:00 GMT\r\nContent-Type: text/html\r\nContent-Length: 5\r\nConnection: keep-alive\r\nETag: \"1-2\"\r\nAccept-Ranges: bytes\r\n\r\nhello"
	if !ok || string(out) != want {
		t.Errorf("got %q, %v\nwant %q", out, ok, want)
	}
	for _, s := range []string{
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", // not the decoy's
		"HTTP/1.1 200 OK\r\nServer: nginx\r\nX: 1",                       // the head does not end here
	} {
		if _, ok := nginxHead([]byte(s)); ok {
			t.Errorf("%q rewritten", s)
		}
	}
}

// FuzzNginxHead: what is rewritten keeps every header line and what
// follows the head, and only heads are.
func FuzzNginxHead(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nServer: nginx\r\nEtag: \"a\"\r\n\r\nbody"))
	f.Add([]byte("HTTP/1.1 404\r\nServer: nginx\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 999 X\r\nServer: nginx\r\n\r\n\r\n\r\n"))
	f.Fuzz(func(t *testing.T, p []byte) {
		out, ok := nginxHead(p)
		if !ok {
			return
		}
		end := bytes.Index(p, []byte("\r\n\r\n"))
		oend := bytes.Index(out, []byte("\r\n\r\n"))
		if oend < 0 || !bytes.Equal(out[oend:], p[end:]) || !bytes.HasPrefix(out, []byte("HTTP/1.1 ")) {
			t.Fatalf("%q became %q", p, out)
		}
		lines := func(b []byte) []string {
			ls := strings.Split(strings.ReplaceAll(string(b), "ETag:", "Etag:"), "\r\n")[1:]
			slices.Sort(ls)
			return ls
		}
		if !slices.Equal(lines(p[:end]), lines(out[:oend])) {
			t.Fatalf("%q became %q: lines differ", p, out)
		}
	})
}
