package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"

	"ferry/internal/fake"
)

// TestBytesIntact sends data through edge and origin to an echo server and
// checks that every byte comes back in order, for 1 byte to 64 MiB.
func TestBytesIntact(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		echo := fake.Start(t, fake.Echo)
		o := startOrigin(t, scheme, "127.0.0.1:0", map[string][]string{"chat": {echo.Addr()}})
		e := startEdge(t, o.url, "chat")
		for _, size := range []int{1, 1 << 20, 64 << 20} {
			t.Run(fmt.Sprint(size), func(t *testing.T) {
				if size > 1<<20 && testing.Short() {
					t.Skip("short")
				}
				c := e.dial(t, "chat")
				sent, got := roundTrip(t, c, int64(size))
				if sent != got {
					t.Fatalf("echoed data differs from sent data (%d bytes)", size)
				}
			})
		}
	})
}

// roundTrip writes size pseudo-random bytes on c, half-closes, reads until
// EOF, and returns the hashes of what was sent and what came back.
func roundTrip(t testing.TB, c *net.TCPConn, size int64) (sent, got [32]byte) {
	t.Helper()
	werr := make(chan error, 1)
	go func() {
		h := sha256.New()
		r := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{byte(size)}), size), h)
		_, err := io.Copy(c, r)
		if err == nil {
			err = c.CloseWrite()
		}
		copy(sent[:], h.Sum(nil))
		werr <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		t.Fatalf("read after %d bytes: %v", n, err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if n != size {
		t.Fatalf("read %d bytes, want %d", n, size)
	}
	copy(got[:], h.Sum(nil))
	return sent, got
}

// TestConcurrentClients runs 500 clients at once over one tunnel.
func TestConcurrentClients(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		echo := fake.Start(t, fake.Echo)
		o := startOrigin(t, scheme, "127.0.0.1:0", map[string][]string{"chat": {echo.Addr()}})
		e := startEdge(t, o.url, "chat")
		echoClients(t, e.addrs["chat"], 500, 4)
	})
}

// echoClients runs clients at once against the echo behind addr, each
// sending rounds messages of its own and checking every echo.
func echoClients(t *testing.T, addr string, clients, rounds int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			c, err := clientDialer.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := range rounds {
				msg := bytes.Repeat([]byte{byte(i), byte(j)}, 512)
				got, err := echoOnce(c, msg)
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				if !bytes.Equal(got, msg) {
					errs <- fmt.Errorf("client %d: echo differs", i)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestHalfClose checks that ending one direction leaves the other working,
// both ways.
func TestHalfClose(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		// The client half-closes first: the server reads to EOF, then answers.
		t.Run("client", func(t *testing.T) {
			srv := fake.Start(t, func(c net.Conn) {
				n, _ := io.Copy(io.Discard, c)
				fmt.Fprintf(c, "got %d bytes", n)
			})
			o := startOrigin(t, scheme, "127.0.0.1:0", map[string][]string{"chat": {srv.Addr()}})
			e := startEdge(t, o.url, "chat")
			c := e.dial(t, "chat")
			if _, err := c.Write(make([]byte, 100_000)); err != nil {
				t.Fatal(err)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			reply, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if string(reply) != "got 100000 bytes" {
				t.Fatalf("reply %q", reply)
			}
		})
		// The server half-closes first: the client reads to EOF, then sends.
		// (Clients speak first: an edge connects nobody who says nothing.)
		t.Run("server", func(t *testing.T) {
			received := make(chan string, 1)
			srv := fake.Start(t, func(c net.Conn) {
				io.ReadFull(c, make([]byte, 2))
				io.WriteString(c, "hello")
				c.(*net.TCPConn).CloseWrite()
				b, _ := io.ReadAll(c)
				received <- string(b)
			})
			o := startOrigin(t, scheme, "127.0.0.1:0", map[string][]string{"chat": {srv.Addr()}})
			e := startEdge(t, o.url, "chat")
			c := e.dial(t, "chat")
			io.WriteString(c, "hi")
			greeting, err := io.ReadAll(c)
			if err != nil || string(greeting) != "hello" {
				t.Fatalf("greeting %q, %v", greeting, err)
			}
			io.WriteString(c, "after your EOF")
			c.CloseWrite()
			if got := <-received; got != "after your EOF" {
				t.Fatalf("server received %q", got)
			}
		})
	})
}

// TestRefusedRoute checks that a route the origin does not have, or cannot
// reach, closes that one client while a transfer on the same tunnel goes on.
func TestRefusedRoute(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		echo := fake.Start(t, fake.Echo)
		dead, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		deadAddr := dead.Addr().String()
		dead.Close() // nothing listens there now
		o := startOrigin(t, scheme, "127.0.0.1:0", map[string][]string{"chat": {echo.Addr()}, "dead": {deadAddr}})
		e := startEdge(t, o.url, "chat", "unknown", "dead")

		// A transfer in flight, half written.
		busy := e.dial(t, "chat")
		pr, pw := io.Pipe()
		werr := make(chan error, 1)
		go func() {
			_, err := io.Copy(busy, pr)
			if err == nil {
				err = busy.CloseWrite()
			}
			werr <- err
		}()
		data := make([]byte, 8<<20)
		for i := range data {
			data[i] = byte(i * 7)
		}
		echoed := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(busy)
			echoed <- b
		}()
		if _, err := pw.Write(data[:4<<20]); err != nil {
			t.Fatal(err)
		}

		for _, route := range []string{"unknown", "dead"} {
			c := e.dial(t, route)
			c.Write([]byte("hello"))
			n, err := c.Read(make([]byte, 1))
			if n != 0 || err == nil {
				t.Fatalf("route %s: read %d bytes, %v; want the connection closed", route, n, err)
			}
		}

		pw.Write(data[4<<20:])
		pw.Close()
		if err := <-werr; err != nil {
			t.Fatal(err)
		}
		if got := <-echoed; !bytes.Equal(got, data) {
			t.Fatalf("concurrent transfer damaged: got %d bytes", len(got))
		}
	})
}

// TestOriginRestart stops the origin and starts another on the same address:
// the edge reconnects and new clients get through.
func TestOriginRestart(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		echo := fake.Start(t, fake.Echo)
		targets := map[string][]string{"chat": {echo.Addr()}}
		o := startOrigin(t, scheme, "127.0.0.1:0", targets)
		e := startEdge(t, o.url, "chat")
		check := func() {
			t.Helper()
			c := e.dial(t, "chat")
			defer c.Close()
			got, err := echoOnce(c, []byte("ping"))
			if err != nil || string(got) != "ping" {
				t.Fatalf("echo %q, %v", got, err)
			}
		}
		check()
		for range 3 {
			o.stop()
			// A client that comes before the edge has seen the session end
			// would be lost with it; this test is about what comes after.
			for {
				changed := e.tunnels.Changed()
				if !e.tunnels.Up() {
					break
				}
				<-changed
			}
			o = startOrigin(t, scheme, o.addr, targets)
			check()
		}
	})
}
