package decoy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// pipeListener hands out the server ends of net.Pipe pairs, so that a
// server runs inside a synctest bubble, on its fake clock.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) dial() net.Conn {
	c, s := net.Pipe()
	l.conns <- s
	return c
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }

// serveInBubble serves the built-in page with NewServer on ln until the
// test's bubble ends.
func serveInBubble(t *testing.T, ln *pipeListener) {
	srv := NewServer(New(Options{Seed: []byte("timeouts")}), nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(Listener(ln))
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
}

// closedAt reports whether the server has closed c: a read that ends
// with EOF, rather than blocking (synctest.Wait tells which).
func closedAt(t *testing.T, c net.Conn) bool {
	t.Helper()
	got := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		got <- err
	}()
	synctest.Wait()
	select {
	case err := <-got:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("read: %v, want EOF", err)
		}
		return true
	default:
		// Unblock the reader: the caller checks again later.
		c.SetReadDeadline(time.Now())
		<-got
		c.SetReadDeadline(time.Time{})
		return false
	}
}

// TestHeaderTimeout: nginx's client_header_timeout, 60 s for a request's
// line and headers, then the connection ends without an answer.
func TestHeaderTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		serveInBubble(t, ln)
		c := ln.dial()
		defer c.Close()
		go io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n")
		synctest.Wait()
		time.Sleep(HeaderTimeout - time.Second)
		if closedAt(t, c) {
			t.Fatalf("closed before %v", HeaderTimeout)
		}
		time.Sleep(time.Second)
		if !closedAt(t, c) {
			t.Fatalf("open after %v", HeaderTimeout)
		}
	})
}

// TestIdleTimeout: nginx's keepalive_timeout, 75 s between requests.
func TestIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		serveInBubble(t, ln)
		c := ln.dial()
		defer c.Close()
		go io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Connection") != "keep-alive" {
			t.Fatalf("%s, Connection %q", resp.Status, resp.Header.Get("Connection"))
		}
		synctest.Wait()
		time.Sleep(IdleTimeout - time.Second)
		if closedAt(t, c) {
			t.Fatalf("closed before %v", IdleTimeout)
		}
		time.Sleep(time.Second)
		if !closedAt(t, c) {
			t.Fatalf("open after %v", IdleTimeout)
		}
	})
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
