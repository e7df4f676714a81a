package tunnel

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"
)

// stranger is a visitor's connection to a ws or wss listener.
type stranger struct {
	net.Conn
	r *bufio.Reader
}

// dialStranger connects to ln from ip (any 127.0.0.0/8 address is the
// loopback's), finishing TLS first for wss unless silent is set: a silent
// stranger sends nothing at all.
func dialStranger(t *testing.T, ln Listener, scheme, ip string, silent bool) *stranger {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if scheme == "wss" && !silent {
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "origin.example"})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		c = tc
	}
	return &stranger{Conn: c, r: bufio.NewReader(c)}
}

// get asks for the decoy's page, keeping the connection alive.
func (s *stranger) get(t *testing.T) {
	t.Helper()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	defer s.SetDeadline(time.Time{})
	if _, err := io.WriteString(s, "GET / HTTP/1.1\r\nHost: origin.example\r\n\r\n"); err != nil {
		t.Fatalf("request from %s: %v", s.LocalAddr(), err)
	}
	resp, err := http.ReadResponse(s.r, nil)
	if err != nil {
		t.Fatalf("answer to %s: %v", s.LocalAddr(), err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("answer to %s: %d, close %v", s.LocalAddr(), resp.StatusCode, resp.Close)
	}
}

// closedByServer checks that the listener closed s without an answer. The
// deadline only bounds a failing test.
func (s *stranger) closedByServer(t *testing.T, why string) {
	t.Helper()
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := s.r.Read(make([]byte, 1))
	if n > 0 || !(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = errors.New("still open")
		}
		t.Fatalf("%s: %s: read %d bytes, %v; want it closed unanswered", why, s.LocalAddr(), n, err)
	}
}

// waitLimits waits until ok holds of ln's limiter, read under its lock.
func waitLimits(t *testing.T, ln Listener, ok func(*connLimiter) bool) {
	t.Helper()
	l := ln.(*WSListener).limits
	timeout := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		done, changed := ok(l), l.changed
		l.mu.Unlock()
		if done {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatal("the listener's counts never got there")
		}
	}
}

func counted(n int) func(*connLimiter) bool {
	return func(l *connLimiter) bool { return len(l.conns) == n }
}

func idleFrom(ip string, n int) func(*connLimiter) bool {
	key := netip.MustParseAddr(ip)
	return func(l *connLimiter) bool {
		idle := 0
		for c := range l.conns {
			if c.key == key && c.state == stateIdle {
				idle++
			}
		}
		return idle == n
	}
}

var limitSchemes = []string{"ws", "wss"}

// TestWSListenerMaxConns: with the cap full of connections that sent
// nothing, the next one is closed unanswered and those admitted are served;
// once they are idle keep-alives, a new one takes the oldest one's place.
func TestWSListenerMaxConns(t *testing.T) {
	for _, scheme := range limitSchemes {
		t.Run(scheme, func(t *testing.T) {
			const max = 4
			ln := listenOn(t, URL{Scheme: scheme, Host: "127.0.0.1:0", Path: "/t"}, ListenOptions{End: transportEnd(true), MaxConns: max, MaxIdlePerIP: 100})
			var in []*stranger
			for range max {
				in = append(in, dialStranger(t, ln, scheme, "127.0.0.1", true))
			}
			waitLimits(t, ln, counted(max))
			dialStranger(t, ln, scheme, "127.0.0.1", true).closedByServer(t, "over the cap")

			// Those admitted are served, and stay as keep-alives. Raw
			// TCP was dialled for them, so TLS starts here for wss.
			for i, s := range in {
				if scheme == "wss" {
					tc := tls.Client(s.Conn, &tls.Config{InsecureSkipVerify: true})
					in[i] = &stranger{Conn: tc, r: bufio.NewReader(tc)}
				}
				in[i].get(t)
				waitLimits(t, ln, idleFrom("127.0.0.1", i+1))
			}
			late := dialStranger(t, ln, scheme, "127.0.0.1", false)
			in[0].closedByServer(t, "the oldest keep-alive at the cap")
			late.get(t)
			for _, s := range in[1:] {
				s.get(t)
			}
		})
	}
}

// TestWSListenerMaxIdlePerIP: one address's idle connections are capped,
// keep-alives by closing its oldest and silent ones by refusing more, while
// another address still gets in.
func TestWSListenerMaxIdlePerIP(t *testing.T) {
	for _, scheme := range limitSchemes {
		t.Run(scheme, func(t *testing.T) {
			const perIP = 3
			ln := listenOn(t, URL{Scheme: scheme, Host: "127.0.0.1:0", Path: "/t"}, ListenOptions{End: transportEnd(true), MaxConns: 100, MaxIdlePerIP: perIP})

			var kept []*stranger
			for i := range perIP {
				s := dialStranger(t, ln, scheme, "127.0.0.2", false)
				s.get(t)
				waitLimits(t, ln, idleFrom("127.0.0.2", i+1))
				kept = append(kept, s)
			}
			next := dialStranger(t, ln, scheme, "127.0.0.2", false)
			kept[0].closedByServer(t, "the address's oldest keep-alive")
			next.get(t)
			for _, s := range kept[1:] {
				s.get(t)
			}

			for range perIP {
				dialStranger(t, ln, scheme, "127.0.0.3", true)
			}
			waitLimits(t, ln, counted(2*perIP))
			dialStranger(t, ln, scheme, "127.0.0.3", true).closedByServer(t, "over the address's cap of silent connections")
			dialStranger(t, ln, scheme, "127.0.0.4", false).get(t)
		})
	}
}

// TestWSListenerCapsSpareTunnels: a tunnel connects while the caps are full
// of a stranger's keep-alives from the same address, and once up it is not
// counted: the cap fills with strangers again, and the session still works.
func TestWSListenerCapsSpareTunnels(t *testing.T) {
	for _, scheme := range limitSchemes {
		t.Run(scheme, func(t *testing.T) {
			const max = 3
			ln := listenOn(t, URL{Scheme: scheme, Host: "127.0.0.1:0", Path: "/t"}, ListenOptions{End: transportEnd(true), MaxConns: max, MaxIdlePerIP: max})
			for i := range max {
				dialStranger(t, ln, scheme, "127.0.0.1", false).get(t)
				waitLimits(t, ln, idleFrom("127.0.0.1", i+1))
			}

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			edge, origin := connect(t, ctx, ln, scheme+"://"+ln.Addr().String()+"/t")
			defer edge.Close()
			defer origin.Close()

			// One stranger made room; the session is not counted.
			waitLimits(t, ln, counted(max-1))
			dialStranger(t, ln, scheme, "127.0.0.5", true)
			waitLimits(t, ln, counted(max))
			if err := edge.Probe(ctx); err != nil {
				t.Fatalf("the session at a full cap: %v", err)
			}
			carries(t, ctx, edge, origin)
		})
	}
}

func TestIPKey(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.7:443", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:443", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::"},
	} {
		a, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := ipKey(a); got != netip.MustParseAddr(tc.want) {
			t.Errorf("ipKey(%s) = %v, want %s", tc.addr, got, tc.want)
		}
	}
}

// TestWSListenerH2Idle: HTTP/2 connections count as HTTP/1.1 keep-alives
// do: an idle one toward its address's idle cap, its oldest closed for a
// new one at the cap, and released from the counts when it closes.
func TestWSListenerH2Idle(t *testing.T) {
	const perIP = 2
	ln := listenOn(t, URL{Scheme: "wss", Host: "127.0.0.1:0", Path: "/t"}, ListenOptions{End: transportEnd(true), MaxConns: 100, MaxIdlePerIP: perIP})
	var kept []*http.ClientConn
	for i := range perIP {
		cc := h2Conn(t, ln, "127.0.0.2")
		if err := h2Get(t, cc); err != nil {
			t.Fatal(err)
		}
		waitLimits(t, ln, idleFrom("127.0.0.2", i+1))
		kept = append(kept, cc)
	}
	next := h2Conn(t, ln, "127.0.0.2")
	if err := h2Get(t, next); err != nil {
		t.Fatal(err)
	}
	if err := h2Get(t, kept[0]); err == nil {
		t.Error("the address's oldest idle h2 connection still answers at the cap")
	}
	if err := h2Get(t, kept[1]); err != nil {
		t.Errorf("a newer idle h2 connection at the cap: %v", err)
	}
	waitLimits(t, ln, idleFrom("127.0.0.2", perIP))
	next.Close()
	kept[1].Close()
	waitLimits(t, ln, counted(0))
}
