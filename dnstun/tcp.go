package dnstun

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// DNS over TCP (RFC 7766), as every authoritative server answers it: a
// scanner that finds UDP 53 answering and TCP 53 closed has found
// something odd. Queries over TCP are answered by Handle as over UDP,
// tunnel queries included (a resolver may retry one over TCP), each
// message with its two-byte length.

// Limits of ServeTCP: connections at once (beyond, the oldest is closed for
// a new one, as a busy server does), and how long one may stay idle.
const (
	MaxTCPConns = 64
	TCPIdle     = 10 * time.Second
)

// ServeTCP answers the queries of the connections ln accepts, until ln is
// closed; then it closes them and returns once their goroutines have.
func (s *Server) ServeTCP(ln net.Listener) error {
	var (
		mu    sync.Mutex
		conns []net.Conn // oldest first
		wg    sync.WaitGroup
	)
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		mu.Lock()
		if len(conns) >= MaxTCPConns {
			conns[0].Close()
			conns = conns[1:]
		}
		conns = append(conns, c)
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(c)
			c.Close()
			mu.Lock()
			for i, x := range conns {
				if x == c {
					conns = append(conns[:i], conns[i+1:]...)
					break
				}
			}
			mu.Unlock()
		}()
	}
}

// serveConn answers one connection's queries until it ends or idles.
func (s *Server) serveConn(c net.Conn) {
	var wmu sync.Mutex // answers may come from a held query's timer
	reply := func(b []byte) {
		wmu.Lock()
		defer wmu.Unlock()
		c.SetWriteDeadline(time.Now().Add(TCPIdle))
		c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(b))))
		c.Write(b)
	}
	var n [2]byte
	for {
		c.SetReadDeadline(time.Now().Add(TCPIdle))
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		s.Handle(q, reply)
	}
}
