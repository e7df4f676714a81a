package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"ferry/cert"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestIdle checks, in fake time, that a relay with no traffic closes after
// Idle and not before, and that traffic pushes the deadline back.
func TestIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, a := net.Pipe()
		b, server := net.Pipe()
		res := make(chan Result, 1)
		go func() { res <- Pipe(context.Background(), a, b, Options{}) }()

		time.Sleep(DefaultIdle / 2)
		go io.ReadFull(server, make([]byte, 5))
		client.Write([]byte("hello")) // traffic at Idle/2
		time.Sleep(DefaultIdle - time.Second)
		synctest.Wait()
		select {
		case <-res:
			t.Fatal("closed before Idle had passed since the last byte")
		default:
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		select {
		case r := <-res:
			if !errors.Is(r.Err, ErrIdle) || r.AToB != 5 {
				t.Fatalf("result %+v, want ErrIdle after 5 bytes", r)
			}
		default:
			t.Fatal("still open after Idle")
		}
		client.Close()
		server.Close()
	})
}

// TestCancel checks that the end of the context closes both sides.
func TestCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, a := net.Pipe()
		b, server := net.Pipe()
		ctx, cancel := context.WithCancel(context.Background())
		res := make(chan Result, 1)
		go func() { res <- Pipe(ctx, a, b, Options{}) }()
		cancel()
		if r := <-res; !errors.Is(r.Err, context.Canceled) {
			t.Fatalf("result %+v", r)
		}
		if _, err := client.Read(make([]byte, 1)); err == nil {
			t.Fatal("client still open")
		}
		if _, err := server.Read(make([]byte, 1)); err == nil {
			t.Fatal("server still open")
		}
	})
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// TestHalfClose checks that EOF one way half-closes only that way, and that
// a relay left half-closed and silent ends after HalfClosedIdle.
func TestHalfClose(t *testing.T) {
	client, a := tcpPair(t)
	b, server := tcpPair(t)
	res := make(chan Result, 1)
	go func() { res <- Pipe(context.Background(), a, b, Options{HalfClosedIdle: 50 * time.Millisecond}) }()

	client.Write([]byte("question"))
	client.CloseWrite()
	got, err := io.ReadAll(server)
	if err != nil || string(got) != "question" {
		t.Fatalf("server read %q, %v", got, err)
	}
	server.Write([]byte("answer"))
	buf := make([]byte, 6)
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "answer" {
		t.Fatalf("client read %q, %v", buf, err)
	}
	// The server neither closes nor writes: the relay gives up.
	if r := <-res; !errors.Is(r.Err, ErrIdle) || r.AToB != 8 || r.BToA != 6 {
		t.Fatalf("result %+v", r)
	}
}

// TestFailureResets checks that a failure on one side resets the other, so
// that its peer sees an error rather than a clean end.
func TestFailureResets(t *testing.T) {
	client, a := tcpPair(t)
	b, server := tcpPair(t)
	res := make(chan Result, 1)
	go func() { res <- Pipe(context.Background(), a, b, Options{}) }()

	server.SetLinger(0)
	server.Close() // the relay's read from b fails with a reset
	<-res
	_, err := client.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read: %v, want a reset", err)
	}
}

// TestBurstsAndLulls checks, in fake time, that every burst arrives whole
// and at once whatever its size (one byte, exactly the small buffer, one
// more, a bulk), and that the lulls between them, longer than HotIdle, cool
// a direction down without ending the relay.
func TestBurstsAndLulls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, a := net.Pipe()
		b, server := net.Pipe()
		res := make(chan Result, 1)
		go func() { res <- Pipe(context.Background(), a, b, Options{}) }()
		var total int64
		for _, size := range []int{1, 256, 257, 100 << 10, 1, 256} {
			msg := make([]byte, size)
			got := make(chan error, 1)
			go func() {
				_, err := io.ReadFull(server, make([]byte, size))
				got <- err
			}()
			start := time.Now()
			if _, err := client.Write(msg); err != nil {
				t.Fatal(err)
			}
			if err := <-got; err != nil || time.Since(start) > 0 {
				t.Fatalf("%d bytes: %v after %v", size, err, time.Since(start))
			}
			total += int64(size)
			time.Sleep(2 * HotIdle)
			synctest.Wait()
			select {
			case r := <-res:
				t.Fatalf("the relay ended in a lull: %+v", r)
			default:
			}
		}
		client.Close()
		r := <-res
		server.Close()
		if r.AToB != total {
			t.Fatalf("relayed %d bytes, want %d", r.AToB, total)
		}
	})
}

// BenchmarkPipe relays between two loopback TCP connections: -benchmem shows
// what the relay allocates per chunk (nothing).
func BenchmarkPipe(b *testing.B) {
	pair := func() (net.Conn, net.Conn) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		return c, s
	}
	client, a := pair()
	b2, server := pair()
	done := make(chan Result, 1)
	go func() { done <- Pipe(context.Background(), a, b2, Options{}) }()
	go io.Copy(io.Discard, server)
	buf := make([]byte, BufferSize)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := client.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	client.Close()
	<-done
	server.Close()
}

// TestHotIdleOverTLS checks, in fake time, that a lull longer than HotIdle
// leaves a TLS connection usable: the read deadline that cools a direction
// down must not break crypto/tls's state.
func TestHotIdleOverTLS(t *testing.T) {
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		clientRaw, edgeRaw := net.Pipe()
		b, server := net.Pipe()
		client := tls.Client(clientRaw, &tls.Config{InsecureSkipVerify: true})
		a := tls.Server(edgeRaw, &tls.Config{Certificates: []tls.Certificate{crt}})
		res := make(chan Result, 1)
		go func() { res <- Pipe(context.Background(), a, b, Options{}) }()
		for _, size := range []int{300, 40 << 10, 300} { // each turns the direction hot
			got := make(chan error, 1)
			go func() {
				_, err := io.ReadFull(server, make([]byte, size))
				got <- err
			}()
			if _, err := client.Write(make([]byte, size)); err != nil {
				t.Fatal(err)
			}
			if err := <-got; err != nil {
				t.Fatalf("%d bytes: %v", size, err)
			}
			time.Sleep(3 * HotIdle)
			synctest.Wait()
		}
		client.Close()
		server.Close()
		if r := <-res; r.AToB != 300+40<<10+300 {
			t.Fatalf("relayed %+v", r)
		}
	})
}

// fill writes to c until a write blocks for a while: c's peer does not
// read, so every buffer between is full. It returns what it wrote.
func fill(t *testing.T, c net.Conn) int64 {
	t.Helper()
	var n int64
	chunk := make([]byte, 64<<10)
	for {
		c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		w, err := c.Write(chunk)
		n += int64(w)
		if err != nil {
			c.SetWriteDeadline(time.Time{})
			if !isTimeout(err) {
				t.Fatalf("filling: %v", err)
			}
			return n
		}
	}
}

// TestBlockedWriteSeesReset checks that a relay whose write is blocked (the
// target stopped reading an upload) still sees its client's reset, and
// resets the target at once rather than at the idle timeout.
func TestBlockedWriteSeesReset(t *testing.T) {
	client, a := tcpPair(t)
	b, server := tcpPair(t)
	res := make(chan Result, 1)
	go func() { res <- Pipe(context.Background(), a, b, Options{Idle: time.Hour}) }()

	fill(t, client)
	client.SetLinger(0)
	client.Close()
	select {
	case r := <-res:
		if !errors.Is(r.Err, syscall.ECONNRESET) {
			t.Fatalf("result %+v, want the client's reset", r)
		}
	case <-time.After(10 * StallCheck):
		t.Fatal("relay still blocked on its write after the client's reset")
	}
	// The target's pending bytes are discarded; its reads end in a reset.
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	var err error
	for err == nil {
		_, err = server.Read(make([]byte, 64<<10))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("target read %v, want a reset", err)
	}
}

// TestBlockedWriteSeesFIN checks that a relay whose write is blocked sees
// its client's FIN, which puts it on HalfClosedIdle, not the whole Idle.
func TestBlockedWriteSeesFIN(t *testing.T) {
	client, a := tcpPair(t)
	b, server := net.Pipe() // a target that reads nothing: the relay's first write blocks
	defer server.Close()
	res := make(chan Result, 1)
	go func() {
		res <- Pipe(context.Background(), a, b, Options{Idle: time.Hour, HalfClosedIdle: 100 * time.Millisecond})
	}()

	client.Write([]byte("upload"))
	client.CloseWrite()
	select {
	case r := <-res:
		if !errors.Is(r.Err, ErrIdle) {
			t.Fatalf("result %+v, want the half-closed idle timeout", r)
		}
	case <-time.After(10 * StallCheck):
		t.Fatal("relay still blocked on its write after the client's FIN")
	}
}

// enderConn is a connection whose PeerEnded says what ended says.
type enderConn struct {
	net.Conn
	ended chan error
}

func (c *enderConn) PeerEnded() error {
	select {
	case err := <-c.ended:
		return err
	default:
		return nil
	}
}

// TestBlockedWriteAsksStream checks, in fake time, that a relay blocked
// writing a stream's bytes asks the stream (a PeerEnder) how its peer
// stands, and aborts at its reset within StallCheck or so.
func TestBlockedWriteAsksStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		peer, s := net.Pipe()
		b, _ := net.Pipe() // a target that never reads
		st := &enderConn{Conn: s, ended: make(chan error, 1)}
		res := make(chan Result, 1)
		go func() { res <- Pipe(context.Background(), st, b, Options{Idle: time.Hour}) }()
		go peer.Write([]byte("upload"))
		synctest.Wait() // the relay's write to b blocks

		reset := errors.New("stream reset")
		st.ended <- reset
		time.Sleep(StallCheck + time.Millisecond)
		synctest.Wait()
		select {
		case r := <-res:
			if !errors.Is(r.Err, reset) {
				t.Fatalf("result %+v, want the stream's reset", r)
			}
		default:
			t.Fatal("relay still blocked after the stream's reset")
		}
		peer.Close()
	})
}

// TestTLSHalfCloseSendsFIN checks that a relay ending its writing to a TLS
// client sends the TCP FIN after TLS's close_notify: a client that reads
// the socket, or a TCP proxy in between, sees the end at once.
func TestTLSHalfCloseSendsFIN(t *testing.T) {
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	clientRaw, edgeRaw := tcpPair(t)
	b, server := tcpPair(t)
	client := tls.Client(clientRaw, &tls.Config{InsecureSkipVerify: true})
	a := tls.Server(edgeRaw, &tls.Config{Certificates: []tls.Certificate{crt}})
	res := make(chan Result, 1)
	go func() { res <- Pipe(context.Background(), a, b, Options{}) }()

	if _, err := client.Write([]byte("question")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	server.Write([]byte("answer"))
	server.CloseWrite()
	got, err := io.ReadAll(client) // to TLS's close_notify
	if err != nil || string(got) != "answer" {
		t.Fatalf("client read %q, %v", got, err)
	}
	clientRaw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := clientRaw.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("client's socket read %d, %v after close_notify; want the FIN (EOF)", n, err)
	}
	client.Close()
	<-res
}
