package main

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// archive is what every entry shares.
type archive struct {
	mtime   time.Time
	dir     string
	capFile string
}

// entry is one file to store.
type entry struct {
	src  string // path on disk
	name string // path in the archive
	mode int64
}

// capNetBindService is the security.capability xattr that `setcap
// cap_net_bind_service=+ep` writes: struct vfs_cap_data revision 2, little
// endian: magic_etc (VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE), then
// permitted and inheritable words for capabilities 0-31 and 32-63.
// CAP_NET_BIND_SERVICE is bit 10 of the first permitted word.
var capNetBindService = string([]byte{
	0x01, 0x00, 0x00, 0x02,
	0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
})

func (a archive) entries(files []string) ([]entry, error) {
	es := make([]entry, 0, len(files))
	for _, f := range files {
		// FILE=PATH stores FILE as PATH.
		src, as, renamed := strings.Cut(f, "=")
		fi, err := os.Stat(src)
		if err != nil {
			return nil, fmt.Errorf("stat: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", src)
		}
		mode := int64(0o644)
		if fi.Mode().Perm()&0o111 != 0 {
			mode = 0o755
		}
		name := filepath.Base(src)
		if renamed {
			name = as
		}
		if a.dir != "" {
			name = path.Join(a.dir, name)
		}
		es = append(es, entry{src: src, name: name, mode: mode})
	}
	return es, nil
}

// writeFile writes the archive to a temporary file beside out and renames
// it, so that a failed run leaves no half archive under the final name.
func (a archive) writeFile(out string, write func(io.Writer, []entry) error, files []string) error {
	es, err := a.entries(files)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".archive-*")
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp, es); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", out, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	return nil
}

func (a archive) writeTarGz(w io.Writer, es []entry) error {
	// No Name and a zero ModTime: the header carries neither (gzip -n).
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return fmt.Errorf("gzip: %w", err)
	}
	if err := a.writeTar(zw, es); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("gzip: %w", err)
	}
	return nil
}

func (a archive) writeTar(w io.Writer, es []entry) error {
	tw := tar.NewWriter(w)
	if a.dir != "" {
		hdr := &tar.Header{Typeflag: tar.TypeDir, Name: a.dir + "/", Mode: 0o755, ModTime: a.mtime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("tar: %w", err)
		}
	}
	for _, e := range es {
		data, err := os.ReadFile(e.src)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		// PAX, so that the xattr fits; Uname and Gname stay empty, and Go
		// writes no access or change times unless asked.
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: e.mode, Size: int64(len(data)), ModTime: a.mtime, Format: tar.FormatPAX}
		if a.capFile != "" && e.src == a.capFile {
			hdr.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": capNetBindService}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("tar %s: %w", e.name, err)
		}
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("tar %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("tar: %w", err)
	}
	return nil
}

func (a archive) writeZip(w io.Writer, es []entry) error {
	zw := zip.NewWriter(w)
	for _, e := range es {
		data, err := os.ReadFile(e.src)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		// Modified in UTC: zip's DOS time has no zone, and Go adds the
		// extended-timestamp field from the same value, so the host's TZ
		// does not matter.
		hdr := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: a.mtime}
		hdr.SetMode(os.FileMode(e.mode))
		fw, err := zw.CreateHeader(hdr)
		if err != nil {
			return fmt.Errorf("zip %s: %w", e.name, err)
		}
		if _, err := fw.Write(data); err != nil {
			return fmt.Errorf("zip %s: %w", e.name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("zip: %w", err)
	}
	return nil
}
