package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// inputs writes an executable and a plain file and returns their paths.
func inputs(t *testing.T) []string {
	dir := t.TempDir()
	bin, doc := filepath.Join(dir, "ferry"), filepath.Join(dir, "README.md")
	if err := os.WriteFile(bin, []byte("\x7fELF not really"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(doc, []byte("# ferry\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{bin, doc}
}

// build writes the archive named out in a fresh directory, with files'
// disk mtimes set to now, and returns its bytes.
func build(t *testing.T, out string, a archive, files []string) []byte {
	now := time.Now()
	for _, f := range files {
		if err := os.Chtimes(f, now, now); err != nil {
			t.Fatal(err)
		}
	}
	var write func(io.Writer, []entry) error
	switch {
	case strings.HasSuffix(out, ".zip"):
		write = a.writeZip
	case strings.HasSuffix(out, ".tar"):
		write = a.writeTar
	default:
		write = a.writeTarGz
	}
	path := filepath.Join(t.TempDir(), out)
	if err := a.writeFile(path, write, files); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

var commitDate = time.Date(2026, 11, 30, 12, 34, 56, 0, time.UTC)

func TestReproducible(t *testing.T) {
	a := archive{mtime: commitDate, dir: "ferry-v1-linux-amd64"}
	for _, out := range []string{"x.tar.gz", "x.zip"} {
		files := inputs(t)
		first := build(t, out, a, files)
		// Another time of day, another time zone: the same bytes.
		t.Setenv("TZ", "Asia/Tehran")
		if second := build(t, out, a, files); !bytes.Equal(first, second) {
			t.Errorf("%s: two archives of the same files differ", out)
		}
		if third := build(t, out, a, inputs(t)); !bytes.Equal(first, third) {
			t.Errorf("%s: the same files from another directory give other bytes", out)
		}
	}
}

func TestTarEntries(t *testing.T) {
	files := inputs(t)
	data := build(t, "x.tar.gz", archive{mtime: commitDate, dir: "d", capFile: files[0]}, files)
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header carries name %q, time %v: want neither", zr.Name, zr.ModTime)
	}
	tr := tar.NewReader(zr)
	want := []struct {
		name string
		mode int64
		cap  bool
	}{{"d/", 0o755, false}, {"d/ferry", 0o755, true}, {"d/README.md", 0o644, false}}
	for _, w := range want {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("entry %s: %v", w.name, err)
		}
		if hdr.Name != w.name || hdr.Mode != w.mode || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("entry %q mode %o owner %d:%d (%q:%q), want %q mode %o owner 0:0", hdr.Name, hdr.Mode, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname, w.name, w.mode)
		}
		if !hdr.ModTime.Equal(commitDate) {
			t.Errorf("entry %s dated %v, want %v", hdr.Name, hdr.ModTime, commitDate)
		}
		if got := hdr.PAXRecords["SCHILY.xattr.security.capability"]; (got != "") != w.cap || (w.cap && got != capNetBindService) {
			t.Errorf("entry %s: capability xattr %x", hdr.Name, got)
		}
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("after the last entry: %v, want EOF", err)
	}
}

func TestZipEntries(t *testing.T) {
	files := inputs(t)
	data := build(t, "x.zip", archive{mtime: commitDate, dir: "d"}, files)
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 2 || zr.File[0].Name != "d/ferry" || zr.File[1].Name != "d/README.md" {
		t.Fatalf("entries %v", zr.File)
	}
	for _, f := range zr.File {
		if !f.Modified.Equal(commitDate) {
			t.Errorf("%s dated %v, want %v", f.Name, f.Modified, commitDate)
		}
	}
	if m := zr.File[0].Mode().Perm(); m != 0o755 {
		t.Errorf("ferry: mode %o, want 755", m)
	}
}

// TestCapabilityReadsBack checks capNetBindService with libcap's getcap,
// after GNU tar unpacked it as Docker unpacks a build context (needs root
// to set security.* xattrs, and getcap).
func TestCapabilityReadsBack(t *testing.T) {
	getcap, err := exec.LookPath("getcap")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and getcap")
	}
	// Unpack our archive's xattr with tar, and let getcap read it back.
	files := inputs(t)
	data := build(t, "x.tar", archive{mtime: commitDate, capFile: files[0]}, files)
	dir := t.TempDir()
	cmd := exec.Command("tar", "--xattrs", "--xattrs-include=security.capability", "-xf", "-", "-C", dir)
	cmd.Stdin = bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("tar cannot set xattrs here: %v %s", err, out)
	}
	out, err := exec.Command(getcap, filepath.Join(dir, "ferry")).CombinedOutput()
	if err != nil {
		t.Fatalf("getcap: %v %s", err, out)
	}
	if !strings.Contains(string(out), "cap_net_bind_service=ep") {
		t.Errorf("getcap on the unpacked binary: %q, want cap_net_bind_service=ep", out)
	}
}
