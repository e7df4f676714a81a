package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Sessions is the time an edge takes to set up one tunnel session to an
// origin: the dial (TCP, or UDP), the TLS or QUIC handshake, the WebSocket
// upgrade or the HTTP/3 hello stream, and the hellos. Each setup is a fresh
// edge process with one session (FERRY_EDGE_POOL=1), timed by the edge's own
// log from "ferry edge starting", written once its listeners and
// configuration are ready and just before its pool dials, to "tunnel up",
// written once the session is in service; the process's start is before
// the first line and its stop after the second. A fresh process pays its
// first-use costs (code paged in, lazy tables built) inside the window, as
// an edge's first session does.
type Sessions struct {
	Transport string  `json:"transport"`
	Ferry     string  `json:"ferry"` // this, or previous
	Setups    int     `json:"setups"`
	P50       float64 `json:"p50_ms"`
	P90       float64 `json:"p90_ms"`
	// ArrivalP50 is P50 as the bench stamped the two lines on their
	// arrival from the edge's stderr: a check on the edge's own times,
	// which do not wait for the pipe or the bench's scheduling.
	ArrivalP50 float64 `json:"arrival_p50_ms"`
	// XPrevP50 and XPrevP90 are this binary's P50 and P90 over the
	// previous binary's on the same transport, on this binary's rows.
	XPrevP50 float64 `json:"x_previous_p50,omitempty"`
	XPrevP90 float64 `json:"x_previous_p90,omitempty"`
}

// sessionTimeout bounds one edge's wait for its session.
const sessionTimeout = 15 * time.Second

// measureSessions measures o.Sessions setups over each transport for each
// binary, against an origin of the same binary (edges and origins of
// different versions may not talk), the binaries' setups interleaved so
// that the machine's noise falls on both alike.
func measureSessions(ctx context.Context, o Options) ([]Sessions, error) {
	// One certificate for both origins: an origin's own has a key of a
	// random kind, and an RSA signature would outweigh what is measured.
	certFile, keyFile, err := writeCert()
	if err != nil {
		return nil, err
	}
	defer os.Remove(certFile)
	defer os.Remove(keyFile)
	secret := make([]byte, 33)
	rand.Read(secret)
	env := []string{"FERRY_SECRET=" + base64.StdEncoding.EncodeToString(secret), "FERRY_GRACE=1s"}
	roots, err := emptyRoots()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(roots)
	fs := o.ferries()
	urls := make([]map[string]string, len(fs))
	for i, f := range fs {
		origin, u, err := startSessionsOrigin(ctx, f.bin, env, certFile, keyFile, o.Transports)
		if err != nil {
			return nil, fmt.Errorf("origin (%s): %w", f.label, err)
		}
		defer origin.stop()
		urls[i] = u
	}
	var out []Sessions
	for _, tr := range o.Transports {
		times := make([][]setupTime, len(fs))
		// Round -1 is unmeasured: each origin's first session on a
		// listener pays what the origin does once.
		for round := -1; round < o.Sessions; round++ {
			for i, f := range fs {
				t, err := sessionSetup(ctx, f.bin, env, roots, urls[i][tr])
				if err != nil {
					return nil, fmt.Errorf("session over %s (%s): %w", tr, f.label, err)
				}
				if round >= 0 {
					times[i] = append(times[i], t)
				}
			}
		}
		out = append(out, sessionRows(tr, fs, times)...)
	}
	return out, nil
}

// sessionRows sums up the times of each binary over tr, times[i] being
// those of fs[i], fs[0] this binary.
func sessionRows(tr string, fs []ferry, times [][]setupTime) []Sessions {
	var rows []Sessions
	for i, f := range fs {
		logged, arrived := make([]time.Duration, len(times[i])), make([]time.Duration, len(times[i]))
		for j, t := range times[i] {
			logged[j], arrived[j] = t.logged, t.arrived
		}
		rows = append(rows, Sessions{Transport: tr, Ferry: f.label, Setups: len(logged),
			P50: ms(percentile(logged, 50)), P90: ms(percentile(logged, 90)), ArrivalP50: ms(percentile(arrived, 50))})
	}
	if len(rows) > 1 && rows[1].P50 > 0 && rows[1].P90 > 0 {
		rows[0].XPrevP50, rows[0].XPrevP90 = rows[0].P50/rows[1].P50, rows[0].P90/rows[1].P90
	}
	return rows
}

// percentile is the p-th percentile of ds (nearest rank), zero for none.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	return s[min(len(s)*p/100, len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// startSessionsOrigin starts an origin of bin with a listener for each of
// transports, and returns it and the URL an edge dials for each.
func startSessionsOrigin(ctx context.Context, bin string, env []string, certFile, keyFile string, transports []string) (*child, map[string]string, error) {
	free, err := freeAddrs(1 + len(transports))
	if err != nil {
		return nil, nil, err
	}
	admin := free[0]
	urls := map[string]string{}
	var listen []string
	for i, tr := range transports {
		u := tr + "://" + free[1+i]
		if tr != "quic" {
			u += "/t"
		}
		urls[tr] = u
		listen = append(listen, u)
	}
	c, _, err := start(bin, []string{"origin"}, append(slices.Clip(env), "FERRY_LOG_LEVEL=warn", "FERRY_ADMIN="+admin,
		"FERRY_ORIGIN_LISTEN="+strings.Join(listen, ","), "FERRY_ORIGIN_TARGETS=chat=127.0.0.1:1",
		"FERRY_ORIGIN_TLS_CERT="+certFile, "FERRY_ORIGIN_TLS_KEY="+keyFile), 0)
	if err != nil {
		return nil, nil, err
	}
	// Ready once its listeners are: they are opened before the admin
	// endpoint.
	if err := waitReady(ctx, admin); err != nil {
		c.stop()
		return nil, nil, fmt.Errorf("%w\n%s", err, c.log)
	}
	return c, urls, nil
}

// emptyRoots makes a directory with an empty file in it, for an edge's
// SSL_CERT_DIR and SSL_CERT_FILE: Go's crypto/x509 then finds no system
// roots. A wss dialer checks the origin's certificate against them (a
// valid one needs no channel binding), and reading and parsing the
// system's roots, once per process, takes about 30 ms here (Debian's):
// ten times a session's setup, and no part of a session redialled later.
func emptyRoots() (string, error) {
	dir, err := os.MkdirTemp("", "ferry-bench-roots")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, rootsFile), nil, 0o600); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

const rootsFile = "none.pem"

// sessionSetup runs an edge of bin with one session to url, a client
// listener that nobody uses and no system roots (those in the directory
// roots, emptyRoots), and returns its session's setup time, once the edge
// has stopped.
func sessionSetup(ctx context.Context, bin string, env []string, roots, url string) (setupTime, error) {
	free, err := freeAddrs(1)
	if err != nil {
		return setupTime{}, err
	}
	el := newEdgeLog()
	cmd := exec.Command(bin, "edge")
	cmd.Env = append(append(os.Environ(), env...), "FERRY_LOG_FORMAT=json", "FERRY_LOG_LEVEL=info", "FERRY_ADMIN=",
		"FERRY_EDGE_POOL=1", "FERRY_EDGE_ORIGINS="+url, "FERRY_EDGE_LISTEN=tcp://"+free[0]+"/chat",
		"SSL_CERT_DIR="+roots, "SSL_CERT_FILE="+filepath.Join(roots, rootsFile))
	cmd.Stderr = el
	if err := cmd.Start(); err != nil {
		return setupTime{}, fmt.Errorf("edge: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait() // which returns once el has had all of stderr
		close(exited)
	}()
	timeout := time.NewTimer(sessionTimeout)
	defer timeout.Stop()
	var waitErr error
	select {
	case <-el.done:
	case <-exited:
		waitErr = fmt.Errorf("edge exited: %v", cmd.ProcessState)
	case <-timeout.C:
		waitErr = fmt.Errorf("no session within %v", sessionTimeout)
	case <-ctx.Done():
		waitErr = ctx.Err()
	}
	// SIGTERM drains; the edge has no client, so it exits at once.
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	t, err := el.result()
	if err != nil {
		return setupTime{}, fmt.Errorf("%w\nedge: %s", errors.Join(waitErr, err), el.text())
	}
	return t, nil
}

// writeSessions prints the sessions' table.
func (r *Report) writeSessions(w io.Writer) {
	fmt.Fprintf(w, "\ntunnel session setup (edge)    %-8s %-22s %-22s %s\n", "setups", "p50 ms (× previous)", "p90 ms (× previous)", "p50 ms by arrival")
	for _, s := range r.Sessions {
		name := s.Transport
		if s.Ferry != "this" {
			name += " (" + s.Ferry + ")"
		}
		x := func(v float64) string {
			if v == 0 {
				return ""
			}
			return fmt.Sprintf(" (%.2f×)", v)
		}
		fmt.Fprintf(w, "  %-28s %-8d %-22s %-22s %.3f\n", name, s.Setups,
			fmt.Sprintf("%.3f%s", s.P50, x(s.XPrevP50)), fmt.Sprintf("%.3f%s", s.P90, x(s.XPrevP90)), s.ArrivalP50)
	}
}
