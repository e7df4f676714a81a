package memlimit

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"512MiB": 512 << 20, "1GiB": 1 << 30, "800MB": 800e6, "1073741824": 1 << 30, "64 MiB": 64 << 20, "2048KiB": 2 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1GiB", "0", "1.5GiB", "12 parsecs", "99999999999999TiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

// fsRoot lays out files under a temporary root, as /proc and /sys would
// hold them.
func fsRoot(t *testing.T, files map[string]string) string {
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const meminfo = "MemTotal:        2000000 kB\nMemFree:          100000 kB\n"

func TestAvailable(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  int64
	}{
		{"cgroup v2 unit", map[string]string{
			"proc/self/cgroup": "0::/system.slice/ferry-edge.service\n",
			"sys/fs/cgroup/system.slice/ferry-edge.service/memory.max": "536870912\n",
			"proc/meminfo": meminfo,
		}, 512 << 20},
		{"cgroup v2 container", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "268435456\n",
			"proc/meminfo":             meminfo,
		}, 256 << 20},
		{"cgroup v2 without a limit", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "max\n",
			"proc/meminfo":             meminfo,
		}, 2000000 << 10},
		{"cgroup v1", map[string]string{
			"proc/self/cgroup": "12:pids:/x\n5:memory:/docker/abc\n0::/\n",
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "1073741824\n",
			"proc/meminfo": meminfo,
		}, 1 << 30},
		{"cgroup v1 without a limit", map[string]string{
			"proc/self/cgroup":                           "5:memory:/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
			"proc/meminfo":                               meminfo,
		}, 2000000 << 10},
		{"no cgroup", map[string]string{"proc/meminfo": meminfo}, 2000000 << 10},
	}
	for _, c := range cases {
		got, _, err := Available(fsRoot(t, c.files))
		if err != nil || got != c.want {
			t.Errorf("%s: %d, %v; want %d", c.name, got, err, c.want)
		}
	}
	if _, _, err := Available(t.TempDir()); err == nil {
		t.Error("nothing to read, yet no error")
	}
}

func TestApply(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	root := fsRoot(t, map[string]string{"proc/meminfo": meminfo})
	if n, src := Apply(Limit{}, root); n != int64(float64(2000000<<10)*Share) || debug.SetMemoryLimit(-1) != n || src == "" {
		t.Errorf("default: %d (%s), runtime has %d", n, src, debug.SetMemoryLimit(-1))
	}
	if n, _ := Apply(Limit{Bytes: 300 << 20}, root); n != 300<<20 || debug.SetMemoryLimit(-1) != 300<<20 {
		t.Errorf("explicit: %d", n)
	}
	if n, src := Apply(Limit{Off: true}, root); n != 0 || src != "off" {
		t.Errorf("off: %d %s", n, src)
	}
}
