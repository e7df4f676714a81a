package install

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestBinary(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs a Linux executable of its own")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := Binary("", runtime.GOARCH); err != nil || !bytes.Equal(b, want) {
		t.Errorf("itself: %v", err)
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	if _, err := Binary("", other); err == nil || !strings.Contains(err.Error(), "-binary") {
		t.Errorf("another architecture: %v", err)
	}

	// A release archive: a directory, README, and the binary.
	var buf bytes.Buffer
	// Stored, not compressed: the race detector makes deflating this test binary slow.
	zw, _ := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	tw := tar.NewWriter(zw)
	for _, f := range []struct {
		name string
		body []byte
	}{{"ferry-v1-linux/README.md", []byte("# ferry")}, {"ferry-v1-linux/ferry", want}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o755, Size: int64(len(f.body)), Typeflag: tar.TypeReg})
		tw.Write(f.body)
	}
	tw.Close()
	zw.Close()
	dir := t.TempDir()
	archive := filepath.Join(dir, "ferry.tar.gz")
	os.WriteFile(archive, buf.Bytes(), 0o644)
	if b, err := Binary(archive, runtime.GOARCH); err != nil || !bytes.Equal(b, want) {
		t.Errorf("archive: %v", err)
	}
	if _, err := Binary(archive, other); err == nil {
		t.Error("an archive for another architecture is accepted")
	}
	text := filepath.Join(dir, "notes")
	os.WriteFile(text, []byte("not a binary"), 0o644)
	if _, err := Binary(text, runtime.GOARCH); err == nil {
		t.Error("a text file is accepted")
	}
	for m, want := range map[string]string{"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"} {
		if got, err := goarch(m + "\n"); got != want || err != nil {
			t.Errorf("uname -m %s: %s %v", m, got, err)
		}
	}
}
