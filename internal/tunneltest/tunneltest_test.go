package tunneltest

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"ferry/tunnel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStreamContract holds Pipe's streams, and a Pair's, to the contract
// the real transports are held to (e2e's TestStreamContract), each case in
// a bubble of its own: the doubles must work there, and a case that would
// block forever fails at once as a deadlock.
func TestStreamContract(t *testing.T) {
	pairs := map[string]func(t *testing.T) (a, b tunnel.Stream){
		"pipe": func(*testing.T) (a, b tunnel.Stream) { return Pipe() },
		"session": func(t *testing.T) (a, b tunnel.Stream) {
			edge, origin := Pair(Options{})
			t.Cleanup(func() { edge.Close() })
			return streamPair(t, edge, origin)
		},
	}
	for name, pair := range pairs {
		for _, c := range StreamCases {
			t.Run(name+"/"+c.Name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					a, b := pair(t)
					c.Check(t, a, b)
				})
			})
		}
	}
}

func streamPair(t *testing.T, edge, origin *Session) (a, b tunnel.Stream) {
	t.Helper()
	a, err := edge.OpenStream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, err = origin.AcceptStream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestCloseResetsStreams checks that a session's Close ends both of the
// pair and resets their live streams, as the session's end and not as a
// peer's abort, while a stream that both ends closed is forgotten.
func TestCloseResetsStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		edge, origin := Pair(Options{})
		done, _ := streamPair(t, edge, origin)
		done.Close()
		a, b := streamPair(t, edge, origin)
		// The first stream is still live: b's end has not closed it.
		if n := edge.Streams(); n != 2 {
			t.Errorf("%d live streams, want 2", n)
		}
		read := make(chan error, 1)
		go func() {
			_, err := b.Read(make([]byte, 1))
			read <- err
		}()
		synctest.Wait() // b's Read waits
		origin.Close()
		if err := <-read; !errors.Is(err, tunnel.ErrStreamReset) || errors.Is(err, tunnel.ErrPeerAborted) {
			t.Errorf("a read at the session's end: %v, want ErrStreamReset, not ErrPeerAborted", err)
		}
		if _, err := a.Write([]byte("x")); !errors.Is(err, tunnel.ErrStreamReset) {
			t.Errorf("a write after the session's end: %v, want ErrStreamReset", err)
		}
		if err := a.PeerEnded(); !errors.Is(err, tunnel.ErrStreamReset) {
			t.Errorf("PeerEnded %v after the session's end", err)
		}
		for _, s := range []*Session{edge, origin} {
			select {
			case <-s.Done():
			default:
				t.Error("a session of the pair is not done")
			}
			if _, err := s.OpenStream(t.Context()); !errors.Is(err, ErrClosed) {
				t.Errorf("OpenStream on an ended session: %v", err)
			}
			if _, err := s.AcceptStream(t.Context()); !errors.Is(err, ErrClosed) {
				t.Errorf("AcceptStream on an ended session: %v", err)
			}
			if err := s.Probe(t.Context()); !errors.Is(err, ErrClosed) {
				t.Errorf("Probe on an ended session: %v", err)
			}
		}
		if n := edge.Streams(); n != 0 {
			t.Errorf("%d live streams after the end, want 0", n)
		}
	})
}

// TestStreamClosedByBothForgotten checks that Streams counts a stream out
// once both of its ends closed it.
func TestStreamClosedByBothForgotten(t *testing.T) {
	edge, origin := Pair(Options{})
	defer edge.Close()
	a, b := streamPair(t, edge, origin)
	a.Close()
	if n := edge.Streams(); n != 1 {
		t.Errorf("%d live streams with one end open, want 1", n)
	}
	b.Close()
	if n := edge.Streams(); n != 0 {
		t.Errorf("%d live streams, want 0", n)
	}
}

// TestDrain checks that one end's Drain closes the other's PeerDraining,
// and only the other's.
func TestDrain(t *testing.T) {
	edge, origin := Pair(Options{})
	defer edge.Close()
	origin.Drain()
	origin.Drain() // twice is as once
	select {
	case <-edge.PeerDraining():
	default:
		t.Error("the edge did not hear the origin drain")
	}
	select {
	case <-origin.PeerDraining():
		t.Error("the origin heard itself drain")
	default:
	}
}

// TestFullAndSilent checks the injected failures: a full session's
// OpenStream waits until its ctx ends, a silent one's Probe too, and both
// are counted; each is a session like any other again once set back.
func TestFullAndSilent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		edge, origin := Pair(Options{RTT: 30 * time.Millisecond, ClientAddress: true})
		defer edge.Close()
		if edge.RTT() != 30*time.Millisecond || !origin.ClientAddress() {
			t.Error("the options are not reported")
		}
		edge.SetFull(true)
		edge.SetSilent(true)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		if _, err := edge.OpenStream(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("OpenStream on a full session: %v", err)
		}
		if err := edge.Probe(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Probe of a silent session: %v", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("they waited %v, want ctx's second", d)
		}
		edge.SetFull(false)
		edge.SetSilent(false)
		if err := edge.Probe(t.Context()); err != nil {
			t.Errorf("Probe: %v", err)
		}
		streamPair(t, edge, origin)
		if edge.Opens() != 2 || edge.Probes() != 2 {
			t.Errorf("%d opens and %d probes counted, want 2 and 2", edge.Opens(), edge.Probes())
		}
	})
}

// TestSessionsDialer checks that Sessions hands out its sessions in turn,
// then fails, and counts every dial.
func TestSessionsDialer(t *testing.T) {
	a, _ := Pair(Options{})
	b, _ := Pair(Options{})
	defer a.Close()
	defer b.Close()
	d := Sessions(a, b)
	for _, want := range []tunnel.Session{a, b} {
		if s, err := d.Dial(t.Context()); s != want || err != nil {
			t.Fatalf("Dial: %v, %v", s, err)
		}
	}
	if _, err := d.Dial(t.Context()); !errors.Is(err, ErrNoSession) {
		t.Errorf("Dial past the sessions: %v", err)
	}
	if n := d.Dials(); n != 3 {
		t.Errorf("%d dials counted, want 3", n)
	}
}

// TestServe checks that Serve runs a handler per stream, closes the
// stream after it, and returns once the session has ended and every
// handler has returned.
func TestServe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		edge, origin := Pair(Options{})
		var wg sync.WaitGroup
		wg.Go(func() {
			Serve(origin, func(st tunnel.Stream) {
				io.Copy(st, st)
				st.CloseWrite()
			})
		})
		for range 3 {
			st, err := edge.OpenStream(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			st.Write([]byte("echo"))
			st.CloseWrite()
			if got, err := io.ReadAll(st); err != nil || string(got) != "echo" {
				t.Errorf("read %q, %v", got, err)
			}
			st.Close()
		}
		// A handler left blocked on a stream ends with the session.
		if _, err := edge.OpenStream(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := edge.Streams(); n != 1 {
			t.Errorf("%d live streams, want the one left open", n)
		}
		edge.Close()
		wg.Wait()
	})
}
