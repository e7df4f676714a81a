// Package daemon helps tests run a real server program of Debian's (BIND's
// named, unbound) on loopback: a port free for both UDP and TCP, and the
// program's output watched for the line that says it serves.
package daemon

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"testing"
)

// FreeUDPTCPPort returns a loopback port free for both UDP and TCP now: a
// DNS server listens on both.
func FreeUDPTCPPort(t testing.TB) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

// Output keeps a program's output, and closes Ready once it holds marker.
type Output struct {
	Ready chan struct{}

	mu     sync.Mutex
	buf    bytes.Buffer
	marker []byte
	closed bool
}

// NewOutput returns an Output waiting for marker.
func NewOutput(marker string) *Output {
	return &Output{Ready: make(chan struct{}), marker: []byte(marker)}
}

func (w *Output) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.closed && bytes.Contains(w.buf.Bytes(), w.marker) {
		w.closed = true
		close(w.Ready)
	}
	return len(p), nil
}

func (w *Output) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
