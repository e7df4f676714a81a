package e2e

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/ferryproxy/ferry/tunnel"
)

// sessionPair runs a tunnel session between an edge and an origin end over
// scheme, and returns the edge's and the origin's.
func sessionPair(t *testing.T, scheme string) (edgeSess, originSess tunnel.Session) {
	t.Helper()
	ln, url := listenTunnel(t, scheme, "127.0.0.1:0", tunnel.End{Origin: true, Secret: secret, Log: testLogger(t)})
	t.Cleanup(func() { ln.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	accepted := make(chan tunnel.Session, 1)
	go func() {
		s, _ := ln.Accept(ctx)
		accepted <- s
	}()
	eds, err := dialer(t, url).Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ors := <-accepted
	if ors == nil {
		eds.Close()
		t.Fatal("no session accepted")
	}
	// Closed before the listener: a QUIC listener's Close waits for them.
	t.Cleanup(func() { eds.Close(); ors.Close() })
	return eds, ors
}

// streamPair opens a stream on the edge's session and accepts it on the
// origin's; a byte written first makes the stream known to the origin.
func streamPair(t *testing.T, eds, ors tunnel.Session) (edgeSt, originSt tunnel.Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := eds.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	b, err := ors.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(b, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestStreamContract checks tunnel.Stream's contract on every transport:
// CloseWrite is a FIN after which the other direction goes on, Close after
// both directions ended loses nothing, and Close before that resets the
// stream, which the peer's Read and Write report as tunnel.ErrStreamReset.
func TestStreamContract(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		eds, ors := sessionPair(t, scheme)

		t.Run("half-close", func(t *testing.T) {
			a, b := streamPair(t, eds, ors)
			a.Write([]byte("up"))
			a.CloseWrite()
			got, err := io.ReadAll(b)
			if err != nil || string(got) != "up" {
				t.Fatalf("origin read %q, %v; want up and EOF", got, err)
			}
			// The other direction still flows after the FIN.
			b.Write([]byte("down"))
			b.CloseWrite()
			got, err = io.ReadAll(a)
			if err != nil || string(got) != "down" {
				t.Fatalf("edge read %q, %v; want down and EOF", got, err)
			}
			if err := a.Close(); err != nil {
				t.Errorf("clean close: %v", err)
			}
			b.Close()
		})

		t.Run("reset", func(t *testing.T) {
			a, b := streamPair(t, eds, ors)
			b.Write([]byte("unread"))
			b.Close() // an abort: neither direction has ended
			buf := make([]byte, 64)
			var err error
			for err == nil {
				_, err = a.Read(buf)
			}
			if !errors.Is(err, tunnel.ErrStreamReset) {
				t.Fatalf("edge read %v after the origin's reset, want ErrStreamReset", err)
			}
			// QUIC's STOP_SENDING may come a frame after RESET_STREAM.
			a.SetWriteDeadline(time.Now().Add(time.Second))
			for err = nil; err == nil; {
				_, err = a.Write([]byte("x"))
			}
			if !errors.Is(err, tunnel.ErrStreamReset) {
				t.Fatalf("edge write %v after the origin's reset, want ErrStreamReset", err)
			}
			a.Close()
		})

		// A relay blocked writing a stream's bytes elsewhere asks the
		// stream, without reading it, whether its peer has reset it.
		t.Run("peer-ended", func(t *testing.T) {
			a, b := streamPair(t, eds, ors)
			if err := a.PeerEnded(); err != nil {
				t.Fatalf("PeerEnded %v on a live stream", err)
			}
			b.Write([]byte("unread"))
			b.Close()
			deadline := time.Now().Add(5 * time.Second)
			var err error
			for err = a.PeerEnded(); err == nil && time.Now().Before(deadline); err = a.PeerEnded() {
				time.Sleep(time.Millisecond) // the reset is in flight
			}
			if !errors.Is(err, tunnel.ErrStreamReset) {
				t.Fatalf("PeerEnded %v after the origin's reset, want ErrStreamReset", err)
			}
			a.Close()
		})
	})
}
