package install

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"
)

// goarch maps `uname -m` to Go's GOARCH.
func goarch(machine string) (string, error) {
	switch m := strings.TrimSpace(machine); {
	case m == "x86_64" || m == "amd64":
		return "amd64", nil
	case m == "aarch64" || m == "arm64":
		return "arm64", nil
	case strings.HasPrefix(m, "armv7") || strings.HasPrefix(m, "armv8l"):
		return "arm", nil
	case m == "i386" || m == "i686":
		return "386", nil
	case m == "riscv64" || m == "ppc64le" || m == "s390x":
		return m, nil
	default:
		return "", fmt.Errorf("unknown machine %q (uname -m)", m)
	}
}

// elfMachines is the ELF machine of a Linux binary for each GOARCH.
var elfMachines = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM, "386": elf.EM_386,
	"riscv64": elf.EM_RISCV, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390,
}

// Binary returns the ferry binary for a Linux host of arch (a GOARCH): from
// file when given (a release .tar.gz holding a file named ferry, or a bare
// binary), else this process's own executable when it is linux/arch. The
// binary is checked to be a Linux ELF for arch before anything is copied.
func Binary(file, arch string) ([]byte, error) {
	var b []byte
	var err error
	switch {
	case file != "":
		b, err = readBinary(file)
	case runtime.GOOS == "linux" && runtime.GOARCH == arch:
		var self string
		if self, err = os.Executable(); err == nil {
			b, err = os.ReadFile(self)
		}
	default:
		return nil, fmt.Errorf("the host is linux/%s and this ferry is %s/%s: give -binary, a release archive for linux/%s",
			arch, runtime.GOOS, runtime.GOARCH, arch)
	}
	if err != nil {
		return nil, fmt.Errorf("ferry binary: %w", err)
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("ferry binary %s: not a Linux executable: %w", file, err)
	}
	if want := elfMachines[arch]; f.Machine != want || f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return nil, fmt.Errorf("ferry binary %s is for %v, the host is linux/%s", file, f.Machine, arch)
	}
	return b, nil
}

// readBinary reads a bare binary, or the file named ferry in a .tar.gz.
func readBinary(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		return b, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: no file named ferry in the archive", file)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if h.Typeflag == tar.TypeReg && path.Base(h.Name) == "ferry" {
			return io.ReadAll(io.LimitReader(tr, 1<<30))
		}
	}
}
