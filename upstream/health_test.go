package upstream

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"ferry/internal/fake"
)

// fakeTargets answers dials of the addresses that are up; the others fail
// with "refused" after a delay, as a black-holed address times out.
type fakeTargets struct {
	mu    sync.Mutex
	up    map[string]bool
	delay time.Duration
	dials atomic.Int64
}

func (f *fakeTargets) set(addr string, up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.up[addr] = up
}

func (f *fakeTargets) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	f.dials.Add(1)
	f.mu.Lock()
	up := f.up[addr]
	f.mu.Unlock()
	if !up && f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if !up {
		return nil, errors.New("connection refused")
	}
	c, s := net.Pipe()
	s.Close()
	return c, nil
}

// TestRouteDownAndBack checks that an idle route whose alternatives all
// stop answering is down within DownAfter, with
// one WARN naming it, and back at the first probe that answers, with one
// INFO; the other route stays up throughout.
func TestRouteDownAndBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeTargets{up: map[string]bool{"a:1": true, "b:1": true, "m:1": true}, delay: time.Second}
		var log fake.SyncBuffer
		d := &Dialer{Targets: targets(t, "chat=a:1|b:1,media=m:1"), DialContext: f.dial,
			Log: slog.New(slog.NewTextHandler(&log, nil))}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan struct{})
		go func() { d.Watch(ctx); close(done) }()
		defer func() { cancel(); <-done }()

		time.Sleep(time.Minute)
		synctest.Wait()
		if got := d.Unreachable(); len(got) != 0 {
			t.Fatalf("routes down while every target answers: %v", got)
		}
		changed := d.Changed()
		f.set("a:1", false)
		f.set("b:1", false)
		lost := time.Now()
		<-changed
		took := time.Since(lost)
		// Counted from the last probe that answered.
		if took > DefaultDownAfter {
			t.Errorf("down after %v, want within %v", took, DefaultDownAfter)
		}
		got := d.Unreachable()
		if len(got) != 1 || got[0].Route != "chat" || !strings.Contains(got[0].Cause.Error(), "connection refused") {
			t.Fatalf("Unreachable = %v, want chat, refused", got)
		}
		// Down for good: no more lines, however long.
		time.Sleep(10 * time.Minute)
		if n := strings.Count(log.String(), "level=WARN"); n != 1 {
			t.Errorf("%d WARNs, want 1:\n%s", n, log.String())
		}

		changed = d.Changed()
		f.set("b:1", true)
		back := time.Now()
		<-changed
		if took := time.Since(back); took > DefaultProbeEvery+time.Second {
			t.Errorf("back after %v, want within a probe", took)
		}
		if got := d.Unreachable(); len(got) != 0 {
			t.Errorf("Unreachable = %v after the route came back", got)
		}
		l := log.String()
		if !strings.Contains(l, `level=WARN msg="route cannot reach WhatsApp: every alternative failed" route=chat`) ||
			strings.Count(l, `level=INFO msg="route reaches WhatsApp again" route=chat`) != 1 {
			t.Errorf("log:\n%s", l)
		}
	})
}

// TestRouteBusyNotProbed checks that a route clients dial all the time is
// not probed, and that their failures alone mark it down.
func TestRouteBusyNotProbed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeTargets{up: map[string]bool{"a:1": true}}
		d := &Dialer{Targets: targets(t, "chat=a:1"), DialContext: f.dial}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { d.Watch(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		synctest.Wait()
		base := f.dials.Load() // the first probe, at start
		for range 60 {
			c, err := d.Dial(ctx, "chat", "", netip.AddrPort{})
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			time.Sleep(time.Second)
		}
		if n := f.dials.Load() - base; n != 60 {
			t.Errorf("%d dials for 60 clients: probes of a busy route", n)
		}
		f.set("a:1", false)
		changed := d.Changed()
		lost := time.Now()
		var clients sync.WaitGroup
		defer func() { cancel(); clients.Wait() }()
		clients.Go(func() {
			for ctx.Err() == nil {
				d.Dial(ctx, "chat", "", netip.AddrPort{})
				time.Sleep(100 * time.Millisecond)
			}
		})
		<-changed
		// The last client that got through came a second before.
		if took := time.Since(lost); took != DefaultDownAfter-time.Second {
			t.Errorf("down after %v, want %v", took, DefaultDownAfter-time.Second)
		}
	})
}

// TestRouteUnknownNames checks that a client's name that does not exist
// does not count against a *.SUFFIX route: a stranger could send one on
// purpose to make the origin look down.
func TestRouteUnknownNames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		notFound := func(ctx context.Context, _, addr string) (net.Conn, error) {
			return nil, &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: addr, IsNotFound: true}}
		}
		d := &Dialer{Targets: targets(t, "media=*.whatsapp.net:443"), DialContext: notFound}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { d.Watch(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		for range 100 {
			d.Dial(ctx, "media", "nonexistent.whatsapp.net", netip.AddrPort{})
			time.Sleep(time.Second)
		}
		if got := d.Unreachable(); len(got) != 0 {
			t.Errorf("Unreachable = %v after dials of unknown names only", got)
		}
	})
}

// TestProbeSendsNothing checks that a probe connects and closes without a
// byte, on a route that sends PROXY headers to its clients' targets.
func TestProbeSendsNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := &Dialer{Targets: targets(t, "chat="+ln.Addr().String()), ProxyProtocol: 2}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Watch(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b [1]byte
	if n, err := c.Read(b[:]); n != 0 || err == nil {
		t.Errorf("a probe sent %d bytes (%v); want none and a close", n, err)
	}
}
