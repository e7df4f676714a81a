// Package unbound runs a real recursive resolver (Debian's unbound) on
// loopback for tests: every query for one zone goes to a stub server (the
// zone's authoritative server under test, a ferry origin's dns listener),
// through unbound's cache, limits, retries and QNAME minimisation, as it
// would through a country's resolvers. Nothing else is resolved, and
// nothing leaves loopback.
package unbound

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/internal/daemon"
)

// Resolver is an unbound run by one test.
type Resolver struct {
	Addr string // 127.0.0.1:PORT, UDP and TCP

	t    testing.TB
	bin  string
	conf string
	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *daemon.Output
	exit chan struct{}
}

// Options shape the resolver's configuration.
type Options struct {
	// EDNSSize is the EDNS buffer size unbound offers the stub server and
	// takes from clients (edns-buffer-size and max-udp-size); 0 keeps
	// unbound's default, 1232.
	EDNSSize int
}

// Start runs unbound in the foreground (-d) with a temp directory of its
// own, forwarding zone to the server at stub (IP:PORT), and stops it by
// its pid when the test ends. It skips the test when unbound is not
// installed, or fails it when CI is set: CI installs it.
func Start(t testing.TB, zone, stub string, o Options) *Resolver {
	t.Helper()
	bin, err := exec.LookPath("unbound")
	if err != nil {
		bin = "/usr/sbin/unbound" // not on a user's PATH on Debian
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("unbound is not installed; CI installs it (Debian: apt-get install unbound)")
			}
			t.Skip("unbound is not installed (Debian: apt-get install unbound); CI installs it")
		}
	}
	host, port, err := net.SplitHostPort(stub)
	if err != nil {
		t.Fatal(err)
	}
	r := &Resolver{t: t, bin: bin}
	// A port found free may be taken before unbound binds it; unbound then
	// exits, and another port is tried.
	for range 3 {
		dir := t.TempDir()
		p := daemon.FreeUDPTCPPort(t)
		r.Addr = fmt.Sprintf("127.0.0.1:%d", p)
		r.conf = filepath.Join(dir, "unbound.conf")
		edns := ""
		if o.EDNSSize > 0 {
			edns = fmt.Sprintf("\tedns-buffer-size: %d\n\tmax-udp-size: %d\n", o.EDNSSize, o.EDNSSize)
		}
		conf := fmt.Sprintf(`server:
	directory: %[1]q
	chroot: ""
	username: ""
	pidfile: "%[1]s/unbound.pid"
	do-daemonize: no
	use-syslog: no
	logfile: ""
	verbosity: 1
	interface: 127.0.0.1
	port: %[2]d
	do-ip6: no
	num-threads: 1
	so-reuseport: no
	access-control: 127.0.0.0/8 allow
	do-not-query-localhost: no
	module-config: "iterator"
	trust-anchor-file: ""
	auto-trust-anchor-file: ""
	root-hints: ""
%[5]sremote-control:
	control-enable: no
stub-zone:
	name: %[3]q
	stub-addr: %[4]s
# Everything else goes to a port where nothing listens: no query leaves
# loopback.
forward-zone:
	name: "."
	forward-addr: 127.0.0.1@1
`, dir, p, zone, host+"@"+port, edns)
		if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := r.start(); err == nil {
			t.Cleanup(r.Stop)
			return r
		} else if !strings.Contains(err.Error(), "ddress already in use") {
			t.Fatal(err)
		}
		t.Logf("unbound: port %d taken, trying another", p)
	}
	t.Fatal("unbound did not start on three ports in a row")
	return nil
}

// start runs unbound and waits until it serves.
func (r *Resolver) start() error {
	cmd := exec.Command(r.bin, "-d", "-c", r.conf)
	out := daemon.NewOutput("start of service")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	exit := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exit)
	}()
	select {
	case <-out.Ready:
	case <-exit:
		return fmt.Errorf("unbound exited:\n%s", out.String())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exit
		return fmt.Errorf("unbound is not serving after 30s:\n%s", out.String())
	}
	r.mu.Lock()
	r.cmd, r.out, r.exit = cmd, out, exit
	r.mu.Unlock()
	return nil
}

// Stop kills unbound by its pid and waits for it; it may be called again.
func (r *Resolver) Stop() {
	r.mu.Lock()
	cmd, exit, out := r.cmd, r.exit, r.out
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exit
	if r.t.Failed() {
		r.t.Logf("unbound's output:\n%s", out.String())
	}
}

// Restart stops unbound and starts it again on the same port, with an
// empty cache.
func (r *Resolver) Restart() {
	r.t.Helper()
	r.Stop()
	if err := r.start(); err != nil {
		r.t.Fatal(err)
	}
}
