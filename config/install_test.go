package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDecoyDir(t *testing.T) {
	dir := t.TempDir()
	toRoot := filepath.Join(dir, "root")
	if err := os.Symlink("/", toRoot); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	for v, want := range map[string]string{
		"/":                     "root of the file system",
		"/.":                    "root of the file system",
		"/etc/..":               "root of the file system",
		toRoot:                  "root of the file system",
		file:                    "not a directory",
		filepath.Join(dir, "x"): "no such file",
	} {
		var d Decoy
		if err := d.Decode(v); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", v, err, want)
		}
	}
	var d Decoy
	if err := d.Decode(dir); err != nil || d.Dir != dir {
		t.Errorf("%q: %v, %+v", dir, err, d)
	}
	if os.Geteuid() != 0 {
		locked := filepath.Join(dir, "locked")
		os.Mkdir(locked, 0)
		if err := d.Decode(locked); err == nil || !strings.Contains(err.Error(), "cannot be read") {
			t.Errorf("an unreadable directory: %v", err)
		}
	}
	setenv(t, map[string]string{"FERRY_SECRET": goodSecret, "FERRY_ORIGIN_DECOY": "/"})
	if err := Load(&Origin{}); err == nil || !strings.HasPrefix(err.Error(), "FERRY_ORIGIN_DECOY:") {
		t.Errorf("FERRY_ORIGIN_DECOY=/: %v", err)
	}
	setenv(t, map[string]string{"FERRY_SECRET": goodSecret, "FERRY_EDGE_ORIGINS": "ws://o.example/t", "FERRY_EDGE_DECOY": toRoot})
	if err := Load(&Edge{}); err == nil || !strings.HasPrefix(err.Error(), "FERRY_EDGE_DECOY:") {
		t.Errorf("FERRY_EDGE_DECOY a link to /: %v", err)
	}
}

func TestReadInstall(t *testing.T) {
	dir := t.TempDir()
	id := filepath.Join(dir, "machine-id")
	os.WriteFile(id, []byte("0123456789abcdef0123456789abcdef\n"), 0o444)
	hostnameFile := filepath.Join(dir, "hostname")
	os.WriteFile(hostnameFile, []byte("box\n"), 0o644)
	ids := []string{filepath.Join(dir, "none"), id}

	a := readInstall(ids, hostnameFile, "box", "origin", "s")
	if b := readInstall(ids, hostnameFile, "box", "origin", "s"); !bytes.Equal(a.Seed, b.Seed) || !a.Since.Equal(b.Since) {
		t.Error("two starts of one install differ")
	}
	if fi, _ := os.Stat(id); !a.Since.Equal(fi.ModTime()) {
		t.Errorf("since %v, the machine ID's file %v", a.Since, fi.ModTime())
	}
	// An edge and its origin share the secret, not their machine.
	other := filepath.Join(dir, "other-id")
	os.WriteFile(other, []byte("fedcba9876543210fedcba9876543210\n"), 0o444)
	for name, in := range map[string]Install{
		"another machine":   readInstall([]string{other}, hostnameFile, "box", "origin", "s"),
		"another host name": readInstall(ids, hostnameFile, "box2", "origin", "s"),
		"another role":      readInstall(ids, hostnameFile, "box", "edge", "s"),
		"another secret":    readInstall(ids, hostnameFile, "box", "origin", "t"),
	} {
		if bytes.Equal(in.Seed, a.Seed) {
			t.Errorf("%s: the same seed", name)
		}
	}
	// A container: no machine ID; its host name and /etc/hostname's date.
	c := readInstall(nil, hostnameFile, "3f2a9c", "edge", "s")
	if fi, _ := os.Stat(hostnameFile); !c.Since.Equal(fi.ModTime()) || len(c.Seed) != 32 {
		t.Errorf("container: %+v", c)
	}
	if d := readInstall(nil, hostnameFile, "3f2a9c", "edge", "s"); !bytes.Equal(c.Seed, d.Seed) {
		t.Error("a container's two starts differ")
	}
	// Nothing to go by: random, never the same.
	e, f := readInstall(nil, "", "", "edge", "s"), readInstall(nil, "", "", "edge", "s")
	if bytes.Equal(e.Seed, f.Seed) || len(e.Seed) != 32 {
		t.Error("without machine ID nor host name, two seeds alike")
	}
}
