package e2e

import (
	"context"
	"io"
	"testing"
	"time"

	"ferry/internal/tunneltest"
	"ferry/tunnel"
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

// TestStreamContract holds every transport to tunnel.Stream's contract,
// as tunneltest's doubles are held to it: the same cases
// (tunneltest.StreamCases), each on a new stream of one session.
func TestStreamContract(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		eds, ors := sessionPair(t, scheme)
		tunneltest.CheckStream(t, func(t *testing.T) (a, b tunnel.Stream) { return streamPair(t, eds, ors) })
	})
}
