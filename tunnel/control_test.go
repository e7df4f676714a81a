package tunnel

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// pipeMux is a muxer with no streams but the control stream: a pipe end.
type pipeMux struct {
	c     net.Conn
	done  chan struct{}
	once  sync.Once
	heard atomic.Int64 // what Heard says, unix nanoseconds; zero as QUIC's
}

func newPipeMux(c net.Conn) *pipeMux { return &pipeMux{c: c, done: make(chan struct{})} }

func (m *pipeMux) OpenStream(context.Context) (Stream, error)   { return nil, errors.New("none") }
func (m *pipeMux) AcceptStream(context.Context) (Stream, error) { return nil, errors.New("none") }
func (m *pipeMux) Done() <-chan struct{}                        { return m.done }
func (m *pipeMux) Heard() time.Time {
	if n := m.heard.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}
func (m *pipeMux) Close() error {
	m.once.Do(func() {
		close(m.done)
		m.c.Close()
	})
	return nil
}

type pipeCtl struct{ net.Conn }

func (pipeCtl) CloseWrite() error { return nil }
func (pipeCtl) PeerEnded() error  { return nil }

func testEnd() End {
	return End{Log: slog.New(slog.DiscardHandler), KeepAlive: 5 * time.Millisecond, PingTimeout: 100 * time.Millisecond}
}

// pairSessions returns two sessions joined by their control streams: a
// loopback TCP connection, buffered as a transport's streams are (a
// net.Pipe is not: both ends pinging at once would block each other).
func pairSessions(t *testing.T) (a, b *session) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ca, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cb, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	a = newSession(newPipeMux(ca), pipeCtl{ca}, testEnd(), 0)
	b = newSession(newPipeMux(cb), pipeCtl{cb}, testEnd(), 0)
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	return a, b
}

// TestControlPingAndDrain checks that both ends measure an RTT, that a
// drain notice reaches the peer, and that pings keep an idle session up.
func TestControlPingAndDrain(t *testing.T) {
	a, b := pairSessions(t)
	deadline := time.After(5 * time.Second)
	for a.RTT() == 0 || b.RTT() == 0 {
		select {
		case <-deadline:
			t.Fatalf("no RTT: %v %v", a.RTT(), b.RTT())
		case <-time.After(time.Millisecond):
		}
	}
	select {
	case <-a.PeerDraining():
		t.Fatal("a's peer drains before saying so")
	default:
	}
	b.Drain()
	b.Drain()
	select {
	case <-a.PeerDraining():
	case <-deadline:
		t.Fatal("the drain notice did not arrive")
	}
	select {
	case <-b.PeerDraining():
		t.Fatal("b's peer does not drain")
	case <-a.Done():
		t.Fatal("session ended")
	default:
	}
}

// TestControlStall checks that a session whose peer stops answering pings
// closes itself after the ping timeout.
func TestControlStall(t *testing.T) {
	ca, cb := net.Pipe()
	defer cb.Close()
	go io.Copy(io.Discard, cb) // reads, never answers
	start := time.Now()
	s := newSession(newPipeMux(ca), pipeCtl{ca}, testEnd(), 0)
	defer s.Close()
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a stalled session stayed up")
	}
	if d := time.Since(start); d < testEnd().PingTimeout {
		t.Fatalf("closed after %v, before the ping timeout", d)
	}
}

// TestControlHeard checks that a session whose pongs do not come, but whose
// peer is heard (its data queued ahead of the pong), stays up, and is
// closed within the ping timeout of the peer's last word.
func TestControlHeard(t *testing.T) {
	// A peer that reads but never answers, and a stalled link whose
	// control stream takes nothing, so that the ping itself cannot go out.
	for _, reads := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			ca, cb := net.Pipe()
			defer cb.Close()
			if reads {
				go io.Copy(io.Discard, cb)
			}
			end := testEnd()
			end.KeepAlive, end.PingTimeout = time.Hour, time.Hour
			s := newSession(newPipeMux(ca), pipeCtl{ca}, end, 0)
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start := time.Now()
			if err := s.Probe(ctx); err == nil {
				t.Fatalf("probe of a silent peer (reading: %v) succeeded", reads)
			}
			if d := time.Since(start); d != time.Second {
				t.Errorf("reading %v: the probe failed after %v, want its context's second", reads, d)
			}
			select {
			case <-s.Done():
				t.Error("a failed probe closed the session")
			default:
			}
		})
	}
}

// FuzzControl feeds arbitrary bytes to a control stream: every complete ping
// gets its pong, and nothing else comes back or panics.
func FuzzControl(f *testing.F) {
	msg := func(typ byte, v uint64) []byte {
		b := make([]byte, ctlLen)
		b[0] = typ
		binary.BigEndian.PutUint64(b[1:], v)
		return b
	}
	f.Add(msg(ctlPing, 7))
	f.Add(append(msg(ctlDrain, 0), msg(ctlPong, 1)...))
	f.Add(append(msg(99, 3), 1, 2))
	f.Fuzz(func(t *testing.T, data []byte) {
		ca, cb := net.Pipe()
		end := testEnd()
		end.KeepAlive = time.Hour // no pings of its own
		end.PingTimeout = time.Hour
		s := newSession(newPipeMux(ca), pipeCtl{ca}, end, 0)
		defer s.Close()
		var pings []uint64
		for p := data; len(p) >= ctlLen; p = p[ctlLen:] {
			if p[0] == ctlPing {
				pings = append(pings, binary.BigEndian.Uint64(p[1:ctlLen]))
			}
		}
		// Read what the session sends until every pong is in: its own
		// first ping may come too, and nothing else may.
		var pongs []uint64
		read := make(chan error, 1)
		go func() {
			b := make([]byte, ctlLen)
			for len(pongs) < len(pings) {
				if _, err := io.ReadFull(cb, b); err != nil {
					read <- err
					return
				}
				switch b[0] {
				case ctlPong:
					pongs = append(pongs, binary.BigEndian.Uint64(b[1:]))
				case ctlPing:
				default:
					read <- fmt.Errorf("sent type %d", b[0])
					return
				}
			}
			read <- nil
		}()
		cb.Write(data)
		select {
		case err := <-read:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d pings, %d pongs", len(pings), len(pongs))
		}
		s.Close()
		if len(pongs) != len(pings) {
			t.Fatalf("%d pings, %d pongs", len(pings), len(pongs))
		}
		for i := range pings {
			if pings[i] != pongs[i] {
				t.Fatalf("pong %d: %d, want %d", i, pongs[i], pings[i])
			}
		}
	})
}

// TestProbe checks that a probe returns once the peer answers, and that a
// probe of a peer that never answers (reading, or taking nothing at all, so
// that the ping cannot even be written) fails at its context's end, without
// closing the session, whose own ping timeout is longer.
func TestProbe(t *testing.T) {
	a, _ := pairSessions(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Probe(ctx); err != nil {
		t.Fatalf("probe of an answering peer: %v", err)
	}

	synctest.Test(t, func(t *testing.T) {
		ca, cb := net.Pipe()
		defer cb.Close()
		go io.Copy(io.Discard, cb) // reads, never answers
		end := testEnd()
		end.KeepAlive, end.PingTimeout = time.Hour, time.Hour
		s := newSession(newPipeMux(ca), pipeCtl{ca}, end, 0)
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		if err := s.Probe(ctx); err == nil {
			t.Fatal("probe of a silent peer succeeded")
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("the probe failed after %v, want its context's second", d)
		}
		select {
		case <-s.Done():
			t.Error("a failed probe closed the session")
		default:
		}
	})
}

// TestControlUnreachable checks that the routes an origin says it cannot
// reach reach its edge, each change, and that repeating one sends nothing.
func TestControlUnreachable(t *testing.T) {
	edge, origin := pairSessions(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Each probe is a round trip on the control stream, behind which the
	// notice arrives: no sleeping.
	await := func(want Routes) {
		t.Helper()
		for edge.PeerUnreachable() != want {
			if err := edge.Probe(ctx); err != nil {
				t.Fatalf("PeerUnreachable = %v, want %v: %v", edge.PeerUnreachable(), want, err)
			}
		}
	}
	if got := edge.PeerUnreachable(); got != 0 {
		t.Fatalf("PeerUnreachable = %v before any notice", got)
	}
	origin.TellUnreachable(RouteChat | RouteOther)
	await(RouteChat | RouteOther)
	if got := edge.PeerUnreachable().String(); got != "chat, another route" {
		t.Errorf("String = %q", got)
	}
	origin.TellUnreachable(RouteChat | RouteOther)
	origin.TellUnreachable(0)
	await(0)
	if got := origin.PeerUnreachable(); got != 0 {
		t.Errorf("the origin's PeerUnreachable = %v", got)
	}
}
