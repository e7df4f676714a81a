// Package install puts ferry on a host over SSH, as `ferry deploy` does:
// the binary, its systemd unit and its environment file, then starts it and
// waits until it is ready. It needs nothing on the host but an SSH server,
// systemd and sh. Secrets go to the host only through a session's standard
// input, never in a command line, and are never printed.
package install

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DNS points a host name's A/AAAA records at addresses: the interface of
// package dnsupdate's Updater.
type DNS interface {
	// Point makes name's A and AAAA records exactly addrs, with ttl, and
	// returns once the authoritative server has them.
	Point(ctx context.Context, name string, addrs []netip.Addr, ttl time.Duration) error
}

// ErrNoSystemd is returned for a host without systemd; nothing was copied.
var ErrNoSystemd = errors.New("the host has no systemd")

// Options say what to deploy where. Zero values are the defaults stated.
type Options struct {
	Role    string // "edge" or "origin"
	Target  Target
	KeyFile string // -i; empty: ssh-agent's keys only
	// Env is the role's environment; Deploy writes it as /etc/ferry/ROLE.env.
	Env Env
	// BinaryFile is -binary: a release .tar.gz or a bare binary; empty:
	// this process's own executable.
	BinaryFile string
	// KnownHosts is the known_hosts file; empty: $HOME/.ssh/known_hosts.
	KnownHosts string
	AgentSock  string // SSH_AUTH_SOCK
	// Terminal is where host keys are asked about: Out shows, In answers
	// (pass one *bufio.Reader to several Connects that share a terminal).
	In  io.Reader
	Out io.Writer
	// Trace, when set, is told every command line run on the host (a
	// test's seam: it shows that no secret is ever in one).
	Trace func(cmd string)
	// ReadyTimeout bounds the wait for the service to be ready; zero: 90 s.
	ReadyTimeout time.Duration
}

// Paths on the host.
const (
	binPath  = "/usr/local/bin/ferry"
	prevPath = "/usr/local/bin/ferry.prev"
	unitDir  = "/etc/systemd/system"
	envDir   = "/etc/ferry"
)

func (o *Options) service() string { return "ferry-" + o.Role }
func (o *Options) envPath() string { return envDir + "/" + o.Role + ".env" }
func (o *Options) unitPath() string {
	return unitDir + "/" + o.service() + ".service"
}

// Session is an open connection to one host.
type Session struct {
	o    Options
	h    *host
	keys *hostKeys
	auth io.Closer
}

// Connect opens an SSH connection to o.Target, checking its host key.
func Connect(ctx context.Context, o Options) (*Session, error) {
	if o.Role != "edge" && o.Role != "origin" {
		return nil, fmt.Errorf("role %q: want edge or origin", o.Role)
	}
	if o.KnownHosts == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
		o.KnownHosts = filepath.Join(home, ".ssh", "known_hosts")
	}
	if o.In == nil {
		o.In = strings.NewReader("")
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	auth, closer, err := signers(o.KeyFile, o.AgentSock)
	if err != nil {
		return nil, err
	}
	answer, ok := o.In.(*bufio.Reader)
	if !ok {
		answer = bufio.NewReader(o.In)
	}
	keys := &hostKeys{path: o.KnownHosts, answer: answer, out: o.Out}
	h, err := dialHost(ctx, o.Target, auth, keys)
	if err != nil {
		closer.Close()
		return nil, err
	}
	h.trace = o.Trace
	return &Session{o: o, h: h, keys: keys, auth: closer}, nil
}

// Close closes the connection.
func (s *Session) Close() error {
	s.auth.Close()
	return s.h.Close()
}

// RemoteIP is the host's address as the connection reached it.
func (s *Session) RemoteIP() netip.Addr {
	if a, ok := s.h.client.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// preflight is the first command run: it changes nothing, and tells the
// architecture, whether systemd runs, and whether ferry is installed.
const preflight = `uname -m
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then echo systemd; else echo none; fi
if [ -x ` + binPath + ` ]; then ` + binPath + ` version 2>/dev/null || echo unknown; else echo absent; fi`

// Install copies the binary, unit and environment file, then (re)starts
// the service: a running one is stopped first, which drains it (SIGTERM,
// up to FERRY_GRACE). The previous binary is kept as ferry.prev. Nothing
// is copied to a host without systemd.
func (s *Session) Install(ctx context.Context) error {
	out, err := s.h.run(ctx, preflight, nil)
	if err != nil {
		return fmt.Errorf("looking at the host: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 3 {
		return fmt.Errorf("looking at the host: unexpected answer %q", out)
	}
	if lines[1] != "systemd" {
		return fmt.Errorf("%w (no systemctl, or /run/systemd/system is absent): ferry deploy installs a systemd service; nothing was copied", ErrNoSystemd)
	}
	arch, err := goarch(lines[0])
	if err != nil {
		return err
	}
	bin, err := Binary(s.o.BinaryFile, arch)
	if err != nil {
		return err
	}
	u, err := unit(s.o.Role)
	if err != nil {
		return err
	}
	env, err := s.o.Env.Marshal()
	if err != nil {
		return fmt.Errorf("environment: %w", err)
	}
	upgrade := lines[2] != "absent"
	if upgrade {
		fmt.Fprintf(s.o.Out, "%s runs %s: upgrading\n", s.o.Target.Host, lines[2])
	}

	// Everything goes next to its place first, so that a failed copy
	// leaves the running service and its files as they were, and the
	// copies are removed.
	copied := false
	defer func() {
		if !copied {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			s.h.run(ctx, "rm -f "+binPath+".new "+s.o.envPath()+".new "+s.o.unitPath()+".new", nil)
		}
	}()
	fmt.Fprintf(s.o.Out, "copying ferry for linux/%s (%d MB)\n", arch, len(bin)>>20)
	if _, err := s.h.run(ctx, "set -e; umask 022; mkdir -p /usr/local/bin; cat > "+binPath+".new; chmod 755 "+binPath+".new; "+binPath+".new version",
		strings.NewReader(string(bin))); err != nil {
		return fmt.Errorf("copying the binary: %w", err)
	}
	if _, err := s.h.run(ctx, "set -e; umask 077; mkdir -p "+envDir+"; cat > "+s.o.envPath()+".new; chmod 600 "+s.o.envPath()+".new",
		strings.NewReader(string(env))); err != nil {
		return fmt.Errorf("writing %s: %w", s.o.envPath(), err)
	}
	if _, err := s.h.run(ctx, "set -e; umask 022; cat > "+s.o.unitPath()+".new", strings.NewReader(string(u))); err != nil {
		return fmt.Errorf("writing %s: %w", s.o.unitPath(), err)
	}

	copied = true

	// The swap: stop (drain), move into place, start.
	if upgrade {
		fmt.Fprintf(s.o.Out, "stopping %s (it drains for up to FERRY_GRACE)\n", s.o.service())
	}
	svc := s.o.service()
	swap := "set -e\n" +
		"systemctl stop " + svc + " 2>/dev/null || true\n" +
		"if [ -f " + binPath + " ]; then mv -f " + binPath + " " + prevPath + "; fi\n" +
		"mv -f " + binPath + ".new " + binPath + "\n" +
		"mv -f " + s.o.envPath() + ".new " + s.o.envPath() + "\n" +
		"mv -f " + s.o.unitPath() + ".new " + s.o.unitPath() + "\n" +
		"systemctl daemon-reload\n" +
		"systemctl enable --quiet " + svc + "\n" +
		"systemctl start " + svc
	if _, err := s.h.run(ctx, swap, nil); err != nil {
		return fmt.Errorf("installing and starting %s: %w%s", svc, err, s.journal(ctx))
	}
	fmt.Fprintf(s.o.Out, "started %s\n", svc)
	return nil
}

// WaitReady waits until the service answers `ferry healthcheck -ready` on
// the host (its admin endpoint), or, with FERRY_ADMIN empty, until systemd
// says it is active.
func (s *Session) WaitReady(ctx context.Context) error {
	timeout := s.o.ReadyTimeout
	if timeout == 0 {
		timeout = 90 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := "systemctl is-active --quiet " + s.o.service()
	admin, set := s.o.Env["FERRY_ADMIN"]
	if !set || admin != "" {
		if !set {
			admin = "127.0.0.1:8199"
		}
		cmd = "FERRY_ADMIN=" + shellQuote(admin) + " " + binPath + " healthcheck -ready"
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		_, err := s.h.run(ctx, cmd, nil)
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %v%s", s.o.service(), timeout, last, s.journal(context.Background()))
		case <-tick.C:
		}
	}
}

// journal is the end of the service's log, for an error message. ferry
// never logs client addresses or the secret.
func (s *Session) journal(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := s.h.run(ctx, "journalctl -u "+s.o.service()+" -n 15 --no-pager -o cat 2>/dev/null", nil)
	if err != nil || strings.TrimSpace(out) == "" {
		return ""
	}
	return "\nthe service's last log lines:\n" + out
}

// Stop stops the role's service on the host (a drain, up to FERRY_GRACE)
// and disables it, for -replace.
func (s *Session) Stop(ctx context.Context) (string, error) {
	svc := s.o.service()
	out, err := s.h.run(ctx, "if systemctl is-active --quiet "+svc+"; then systemctl stop "+svc+" && systemctl disable --quiet "+svc+" && echo stopped; else echo 'not running'; fi", nil)
	if err != nil {
		return "", fmt.Errorf("stopping %s on %s: %w", svc, s.o.Target.Host, err)
	}
	return strings.TrimSpace(out), nil
}
