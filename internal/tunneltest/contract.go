package tunneltest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"ferry/tunnel"
)

// StreamCases are tunnel.Stream's contract as tests, each run on the two
// ends, a and b, of a new stream with nothing in flight. The doubles of
// this package and every real transport (e2e's TestStreamContract) are
// held to these same assertions:
//   - CloseWrite is a FIN after which the other direction goes on;
//   - Close after both directions ended loses nothing;
//   - Close before that resets the stream: the peer's Read and Write fail
//     with tunnel.ErrStreamReset and tunnel.ErrPeerAborted, the unread
//     bytes discarded;
//   - a reset after a FIN leaves the bytes before the FIN readable;
//   - PeerEnded reports a live stream as nil, a reset as ErrStreamReset
//     and a consumed FIN as io.EOF, without reading;
//   - both ends may write at once, neither reading, up to 64 KiB;
//   - a read deadline fails a read with a timeout and leaves the stream
//     usable.
var StreamCases = []struct {
	Name  string
	Check func(t *testing.T, a, b tunnel.Stream)
}{
	{"half-close", func(t *testing.T, a, b tunnel.Stream) {
		a.Write([]byte("up"))
		a.CloseWrite()
		got, err := io.ReadAll(b)
		if err != nil || string(got) != "up" {
			t.Fatalf("b read %q, %v; want up and EOF", got, err)
		}
		// The other direction still flows after the FIN.
		b.Write([]byte("down"))
		b.CloseWrite()
		got, err = io.ReadAll(a)
		if err != nil || string(got) != "down" {
			t.Fatalf("a read %q, %v; want down and EOF", got, err)
		}
		if err := a.Close(); err != nil {
			t.Errorf("clean close: %v", err)
		}
		b.Close()
	}},

	{"reset", func(t *testing.T, a, b tunnel.Stream) {
		b.Write([]byte("unread"))
		b.Close() // an abort: neither direction has ended
		buf := make([]byte, 64)
		var err error
		for err == nil {
			_, err = a.Read(buf)
		}
		if !errors.Is(err, tunnel.ErrStreamReset) || !errors.Is(err, tunnel.ErrPeerAborted) {
			t.Fatalf("a read %v after b's reset, want ErrStreamReset and ErrPeerAborted", err)
		}
		// QUIC's STOP_SENDING may come a frame after RESET_STREAM.
		a.SetWriteDeadline(time.Now().Add(time.Second))
		for err = nil; err == nil; {
			_, err = a.Write([]byte("x"))
		}
		if !errors.Is(err, tunnel.ErrStreamReset) || !errors.Is(err, tunnel.ErrPeerAborted) {
			t.Fatalf("a write %v after b's reset, want ErrStreamReset and ErrPeerAborted", err)
		}
		a.Close()
	}},

	{"reset-after-fin", func(t *testing.T, a, b tunnel.Stream) {
		b.Write([]byte("last"))
		b.CloseWrite()
		b.Close() // an abort, b having read nothing: its FIN stands
		got, err := io.ReadAll(a)
		if err != nil || string(got) != "last" {
			t.Fatalf("a read %q, %v after b's FIN and reset; want last and EOF", got, err)
		}
		a.Close()
	}},

	// A relay blocked writing a stream's bytes elsewhere asks the stream,
	// without reading it, whether its peer has reset it.
	{"peer-ended", func(t *testing.T, a, b tunnel.Stream) {
		if err := a.PeerEnded(); err != nil {
			t.Fatalf("PeerEnded %v on a live stream", err)
		}
		b.Write([]byte("unread"))
		b.Close()
		deadline := time.Now().Add(5 * time.Second)
		var err error
		// Nothing tells when a transport's reset frame has landed but
		// PeerEnded itself: poll it.
		for err = a.PeerEnded(); err == nil && time.Now().Before(deadline); err = a.PeerEnded() {
			time.Sleep(time.Millisecond)
		}
		if !errors.Is(err, tunnel.ErrStreamReset) {
			t.Fatalf("PeerEnded %v after b's reset, want ErrStreamReset", err)
		}
		a.Close()
	}},

	{"peer-ended-fin", func(t *testing.T, a, b tunnel.Stream) {
		b.Write([]byte("x"))
		b.CloseWrite()
		if _, err := io.ReadFull(a, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		var err error
		for err = a.PeerEnded(); err == nil && time.Now().Before(deadline); err = a.PeerEnded() {
			time.Sleep(time.Millisecond) // the FIN is in flight
		}
		if err != io.EOF {
			t.Fatalf("PeerEnded %v after b's FIN, all read; want io.EOF", err)
		}
		a.CloseWrite()
		io.ReadAll(b)
		a.Close()
		b.Close()
	}},

	// net.Pipe fails this: each Write waits for the other's Read.
	{"both-write", func(t *testing.T, a, b tunnel.Stream) {
		up, down := bytes.Repeat([]byte("u"), 64<<10), bytes.Repeat([]byte("d"), 64<<10)
		a.SetWriteDeadline(time.Now().Add(5 * time.Second))
		b.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := a.Write(up); err != nil {
			t.Fatalf("a wrote %v while b did not read", err)
		}
		if _, err := b.Write(down); err != nil {
			t.Fatalf("b wrote %v while a did not read", err)
		}
		a.CloseWrite()
		b.CloseWrite()
		if got, err := io.ReadAll(b); err != nil || !bytes.Equal(got, up) {
			t.Fatalf("b read %d bytes, %v", len(got), err)
		}
		if got, err := io.ReadAll(a); err != nil || !bytes.Equal(got, down) {
			t.Fatalf("a read %d bytes, %v", len(got), err)
		}
		a.Close()
		b.Close()
	}},

	{"deadline", func(t *testing.T, a, b tunnel.Stream) {
		a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := a.Read(make([]byte, 1))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read past the deadline: %v, want a timeout", err)
		}
		a.SetReadDeadline(time.Time{})
		b.Write([]byte("y"))
		if _, err := io.ReadFull(a, make([]byte, 1)); err != nil {
			t.Fatalf("read after a timeout: %v", err)
		}
		a.Close()
		b.Close()
	}},
}

// CheckStream runs StreamCases as subtests of t, each on a stream of its
// own that pair makes.
func CheckStream(t *testing.T, pair func(t *testing.T) (a, b tunnel.Stream)) {
	for _, c := range StreamCases {
		t.Run(c.Name, func(t *testing.T) {
			a, b := pair(t)
			c.Check(t, a, b)
		})
	}
}
