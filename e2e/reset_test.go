package e2e

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"ferry/internal/fake"
)

// resetWithin is how soon a reset at one end of a relayed connection must
// reach the other as a TCP reset: on loopback, a few frames' time.
const resetWithin = 100 * time.Millisecond

// TestTargetReset checks that a target's reset reaches the client as a TCP
// reset, at once, over every transport: over WebSocket too, not as a clean
// end after which the client could go on writing; and the edge does not
// take the reset for a lost session and try the target again.
func TestTargetReset(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		reset := make(chan time.Time, 1)
		var conns atomic.Int32
		target := fake.Start(t, func(c net.Conn) {
			if conns.Add(1) > 1 {
				return
			}
			b := make([]byte, 1)
			if _, err := io.ReadFull(c, b); err != nil {
				return
			}
			c.Write([]byte("y")) // the client knows it is relayed
			c.Write(b)
			c.(*net.TCPConn).SetLinger(0)
			reset <- time.Now()
			c.Close()
		})
		o := startOrigin(t, scheme, "127.0.0.1:0", map[string][]string{"chat": {target.Addr()}})
		e := startEdge(t, o.url, "chat")
		c := e.dial(t, "chat")
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		err := readUntilError(c)
		at := <-reset
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("client read %v after the target's reset, want a reset", err)
		}
		if d := time.Since(at); d > resetWithin {
			t.Errorf("the reset took %v to reach the client", d)
		}
		// The reset may discard the origin's reply before the edge reads
		// it: the edge must not then send the client to the target again.
		if n := conns.Load(); n != 1 {
			t.Errorf("the target was dialled %d times", n)
		}
	})
}

// TestClientReset checks that a client's reset reaches the target as a TCP
// reset, at once, over every transport.
func TestClientReset(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		accepted := make(chan struct{})
		ended := make(chan error, 1)
		target := fake.Start(t, func(c net.Conn) {
			b := make([]byte, 1)
			if _, err := io.ReadFull(c, b); err != nil {
				ended <- err
				return
			}
			close(accepted)
			ended <- readUntilError(c)
		})
		o := startOrigin(t, scheme, "127.0.0.1:0", map[string][]string{"chat": {target.Addr()}})
		e := startEdge(t, o.url, "chat")
		c := e.dial(t, "chat")
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		<-accepted
		c.SetLinger(0)
		at := time.Now()
		c.Close()
		err := <-ended
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("target read %v after the client's reset, want a reset", err)
		}
		if d := time.Since(at); d > resetWithin {
			t.Errorf("the reset took %v to reach the target", d)
		}
	})
}

// readUntilError reads c until it fails, and returns the failure: io.EOF
// for a clean end.
func readUntilError(c net.Conn) error {
	b := make([]byte, 4<<10)
	for {
		if _, err := c.Read(b); err != nil {
			return err
		}
	}
}

// TestSessionKilledResetsClients checks that clients whose session dies
// mid-transfer (the origin closes it at once, as one that crashes) see a
// TCP reset, not a clean end that would pass a truncated download for a
// whole one, over every transport.
func TestSessionKilledResetsClients(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		target := fake.Start(t, func(c net.Conn) {
			c.Read(make([]byte, 1))
			chunk := make([]byte, 32<<10)
			for {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		})
		o := startOrigin(t, scheme, "127.0.0.1:0", map[string][]string{"download": {target.Addr()}})
		e := startEdge(t, o.url, "download")
		const clients = 4
		conns := make([]*net.TCPConn, clients)
		for i := range conns {
			conns[i] = e.dial(t, "download")
			if _, err := conns[i].Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			// Mid-transfer: the download flows.
			if _, err := io.ReadFull(conns[i], make([]byte, 1<<20)); err != nil {
				t.Fatalf("client %d before the kill: %v", i, err)
			}
		}
		at := time.Now()
		o.killSessions()
		for i, c := range conns {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			err := readUntilError(c)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("client %d read %v after its session was killed, want a reset", i, err)
				continue
			}
			if _, err := c.Write([]byte("more")); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
				t.Errorf("client %d wrote after the reset: %v", i, err)
			}
		}
		d := time.Since(at)
		if d > time.Second {
			t.Errorf("the resets took %v to reach the clients", d)
		}
		t.Logf("%s: %d clients reset %v after the kill", scheme, clients, d.Round(time.Millisecond))
	})
}
