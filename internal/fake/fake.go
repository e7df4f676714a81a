// Package fake provides stand-ins for WhatsApp's servers in tests: small TCP
// servers on loopback that echo, swallow or answer in set ways.
package fake

import (
	"io"
	"net"
	"sync"
	"testing"

	"ferry/check"
)

// Server is a TCP server on 127.0.0.1 that runs handle for each connection
// and closes the connection when handle returns.
type Server struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// Start starts a Server; it stops at the end of the test, closing every
// connection and waiting for every handler.
func Start(t testing.TB, handle func(net.Conn)) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				handle(c)
			}()
		}
	}()
	t.Cleanup(s.Close)
	return s
}

// Addr is the server's HOST:PORT.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and waits for its handlers.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Echo writes back what it reads and half-closes after the client does.
func Echo(c net.Conn) {
	io.Copy(c, c)
	c.(*net.TCPConn).CloseWrite()
}

// Discard reads until EOF and writes nothing.
func Discard(c net.Conn) { io.Copy(io.Discard, c) }

// WhatsApp answers a WhatsApp client hello as a chat server does, then
// reads until EOF.
func WhatsApp(c net.Conn) {
	if check.ReadHello(c) != nil {
		return
	}
	c.Write(check.ServerHello())
	io.Copy(io.Discard, c)
}
