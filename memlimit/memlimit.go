// Package memlimit sets the Go runtime's soft memory limit
// (debug.SetMemoryLimit) from FERRY_MEMORY_LIMIT, or from the memory the
// process may use: its cgroup's limit (a container's, a systemd unit's
// MemoryMax) or else the machine's.
//
// Without a limit, a process that held a burst (clients that stop reading
// while their targets send) keeps its heap at the burst's size, since Go
// sizes the next collection by the last: on a small VPS that is memory the
// kernel then lacks for socket buffers, or an OOM kill. With one, the
// collector works harder as the heap nears it and hands memory back.
package memlimit

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"ferry/internal/redact"
)

// Share is the part of the available memory the default limit takes: the
// rest is for what the Go runtime does not count (kernel socket buffers, a
// few MiB per busy client under load) and for other processes.
const Share = 0.75

// Limit is how the limit is chosen.
type Limit struct {
	Bytes int64 // the limit; zero for the default
	Off   bool  // no limit from ferry (GOMEMLIMIT, if set, still applies)
}

// Apply sets the runtime's soft memory limit as l says, with root the file
// system root where the cgroup and /proc files are read ("/" but in
// tests), and returns the limit set (0 for none) and where it came from,
// for the log line at start. An explicit GOMEMLIMIT in the environment is
// left as Go applied it unless l sets bytes.
func Apply(l Limit, root string) (int64, string) {
	switch {
	case l.Off:
		return 0, "off"
	case l.Bytes > 0:
		debug.SetMemoryLimit(l.Bytes)
		return l.Bytes, "FERRY_MEMORY_LIMIT"
	case os.Getenv("GOMEMLIMIT") != "":
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	}
	avail, src, err := Available(root)
	if err != nil {
		return 0, "none: " + err.Error()
	}
	limit := int64(float64(avail) * Share)
	debug.SetMemoryLimit(limit)
	return limit, fmt.Sprintf("%.0f%% of %s", Share*100, src)
}

// Available is the memory this process may use: its cgroup's limit (v2,
// then v1), else the machine's total, and which it is.
func Available(root string) (int64, string, error) {
	if n, ok := cgroupLimit(root); ok {
		return n, "the cgroup's limit", nil
	}
	n, err := memTotal(filepath.Join(root, "proc/meminfo"))
	if err != nil {
		return 0, "", err
	}
	return n, "the machine's memory", nil
}

// cgroupLimit reads the memory limit of this process's cgroup, if it has
// one.
func cgroupLimit(root string) (int64, bool) {
	f, err := os.Open(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var v1, v2 string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case hasController(parts[1], "memory"):
			v1 = parts[2]
		}
	}
	candidates := []string{}
	if v2 != "" {
		candidates = append(candidates,
			filepath.Join(root, "sys/fs/cgroup", v2, "memory.max"),
			// Inside a container's cgroup namespace, its own is the root.
			filepath.Join(root, "sys/fs/cgroup/memory.max"))
	}
	if v1 != "" {
		candidates = append(candidates,
			filepath.Join(root, "sys/fs/cgroup/memory", v1, "memory.limit_in_bytes"),
			filepath.Join(root, "sys/fs/cgroup/memory/memory.limit_in_bytes"))
	}
	for _, p := range candidates {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		// cgroup v1 says "no limit" with a number near the largest.
		if err != nil || n <= 0 || n >= math.MaxInt64/2 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// memTotal reads MemTotal from a /proc/meminfo.
func memTotal(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				n, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil && n > 0 {
					return n << 10, nil
				}
			}
		}
	}
	return 0, errors.New(path + " has no MemTotal")
}

// ParseSize parses a size such as 512MiB, 1GiB, 800MB or 1073741824.
func ParseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	num, mult := s, int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size", redact.Value(s))
	}
	return n * mult, nil
}
