// Package bench measures ferry against baselines from the same run: a
// direct TCP connection and a one-hop relay (HAProxy in mode tcp when it is
// installed, else a Go splice relay). Edge, origin, the test server and the
// relay run as child processes of `ferry-bench`, so that each one's memory
// and CPU are read apart from /proc.
package bench

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
)

// The test server's services, one listener each.
const (
	echoSvc   = "echo"   // writes back what it reads
	sinkSvc   = "sink"   // reads until EOF, then answers with the count (8 bytes, big endian)
	sourceSvc = "source" // reads a count (8 bytes), writes that many bytes, and closes
)

var services = []string{echoSvc, sinkSvc, sourceSvc}

// echoTLS names the edge's TLS listener for the echo service, echoTLSOff
// the same with ?decoy=off, and echoOff the plain one with ?decoy=off; the
// test server itself speaks no TLS.
const (
	echoTLS    = "echo+tls"
	echoTLSOff = "echo+tls-off"
	echoOff    = "echo-off"
)

// Server runs the test server (`ferry-bench server`): it prints a line
// "SERVICE HOST:PORT" per service, then serves until its stdin closes, which
// happens when the parent exits.
func Server(stdin io.Reader, stdout io.Writer) error {
	handlers := map[string]func(net.Conn){echoSvc: echo, sinkSvc: sink, sourceSvc: source}
	var lns []net.Listener
	for _, name := range services {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		lns = append(lns, ln)
		fmt.Fprintf(stdout, "%s %s\n", name, ln.Addr())
		go serve(ln, handlers[name])
	}
	io.Copy(io.Discard, stdin)
	for _, ln := range lns {
		ln.Close()
	}
	return nil
}

// Relay runs the splice relay (`ferry-bench relay TARGET...`), the one-hop
// baseline where HAProxy is not installed: for each target it prints a line
// "TARGET HOST:PORT" with the address it relays from, then relays with
// io.Copy, which splices TCP to TCP on Linux, until its stdin closes.
func Relay(targets []string, stdin io.Reader, stdout io.Writer) error {
	for _, target := range targets {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		fmt.Fprintf(stdout, "%s %s\n", target, ln.Addr())
		go serve(ln, func(c net.Conn) {
			up, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer up.Close()
			var wg sync.WaitGroup
			wg.Go(func() {
				io.Copy(up, c)
				up.(*net.TCPConn).CloseWrite()
			})
			io.Copy(c, up)
			c.(*net.TCPConn).CloseWrite()
			wg.Wait()
		})
	}
	io.Copy(io.Discard, stdin)
	return nil
}

func serve(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

// echo copies with a small buffer of its own: io.Copy would splice TCP to
// TCP through a pipe, two more open files per connection, and the idle
// measurement holds 15,000 of them under a cap of 20,000 files.
func echo(c net.Conn) {
	buf := make([]byte, 4<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func sink(c net.Conn) {
	n, _ := io.Copy(io.Discard, c)
	binary.Write(c, binary.BigEndian, n)
}

// chunk is what source sends, over and over.
var chunk = make([]byte, 256<<10)

func source(c net.Conn) {
	var n int64
	if err := binary.Read(c, binary.BigEndian, &n); err != nil {
		return
	}
	for n > 0 {
		w, err := c.Write(chunk[:min(n, int64(len(chunk)))])
		if err != nil {
			return
		}
		n -= int64(w)
	}
}

// readAddrs reads the "NAME HOST:PORT" lines a child prints, n of them.
func readAddrs(r io.Reader, n int) (map[string]string, error) {
	sc := bufio.NewScanner(r)
	addrs := map[string]string{}
	for len(addrs) < n && sc.Scan() {
		var name, addr string
		if _, err := fmt.Sscan(sc.Text(), &name, &addr); err != nil {
			return nil, fmt.Errorf("child said %q: %w", sc.Text(), err)
		}
		addrs[name] = addr
	}
	if len(addrs) < n {
		return nil, fmt.Errorf("child printed %d addresses, want %d", len(addrs), n)
	}
	return addrs, nil
}
