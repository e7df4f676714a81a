// Package tunneltest provides in-memory stand-ins for package tunnel's
// interfaces, for tests that need no network: a stream pair (Pipe) and a
// session pair (Pair) that keep tunnel.Stream's and tunnel.Session's
// contracts, half-close and reset included, a Dialer that hands out given
// sessions, and CheckStream, the contract's test, which the real transports
// are held to as well.
//
// Everything waits on channels and the clock only, never on a socket, so
// it works inside a testing/synctest bubble, where a deadline or a timer
// runs on the bubble's clock.
package tunneltest

import (
	"io"
	"net"
	"os"
	"sync"
	"time"

	"ferry/tunnel"
)

// DefaultBuffer is how many bytes each direction of a stream holds unread
// before its writer waits. net.Pipe holds none, so that two ends writing at
// once block each other; a transport's stream holds its window.
const DefaultBuffer = 256 << 10

// A direction of a stream, from its writer to its reader, is open, ended by
// the writer's FIN, or reset. As over yamux, a reset ends only the
// directions still open: the bytes before a FIN stay readable.
type dirState uint8

const (
	open dirState = iota
	fin
	reset
)

// Who reset a direction: one of the two ends, or the session.
const bySession = 2

// conn is what the two ends of a stream share. One mutex guards both
// directions; every change closes changed, which waiters select on beside
// their deadline's timer.
type conn struct {
	limit   int
	onEnd   func() // called once, when both ends have closed
	mu      sync.Mutex
	changed chan struct{}
	dirs    [2]direction // dirs[i] is written by end i, read by end 1-i
	ends    [2]endState
}

type direction struct {
	buf     []byte
	state   dirState
	resetBy int // an end, or bySession; when state is reset
}

type endState struct {
	readEOF       bool // Read returned io.EOF
	closed        bool
	readDeadline  time.Time
	writeDeadline time.Time
}

// broadcast wakes every waiter; c.mu is held.
func (c *conn) broadcast() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// wait releases c.mu until the next change or deadline, and reports
// whether the deadline passed; c.mu is held again on return.
func (c *conn) wait(deadline time.Time) (timedOut bool) {
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return true
	}
	ch := c.changed
	c.mu.Unlock()
	defer c.mu.Lock()
	if deadline.IsZero() {
		<-ch
		return false
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-ch:
		return false
	case <-t.C:
		return true
	}
}

// resetOpen resets the directions still open, as reset by by; c.mu is held.
func (c *conn) resetOpen(by int) {
	for i := range c.dirs {
		if d := &c.dirs[i]; d.state == open {
			d.state, d.resetBy, d.buf = reset, by, nil
		}
	}
	c.broadcast()
}

// Stream is one end of an in-memory stream; it implements tunnel.Stream.
type Stream struct {
	c   *conn
	end int // 0 or 1
}

var _ tunnel.Stream = (*Stream)(nil)

// Pipe returns the two ends of a stream that buffers DefaultBuffer bytes
// each way.
func Pipe() (a, b *Stream) { return pipe(DefaultBuffer, nil) }

func pipe(limit int, onEnd func()) (a, b *Stream) {
	c := &conn{limit: limit, onEnd: onEnd, changed: make(chan struct{})}
	return &Stream{c: c, end: 0}, &Stream{c: c, end: 1}
}

// Addr is a Stream's address: a name.
type Addr string

func (a Addr) Network() string { return "tunneltest" }
func (a Addr) String() string  { return string(a) }

// errFor is the error of an operation by this end on a reset direction.
func (s *Stream) errFor(d *direction) error {
	return &ResetError{Aborted: d.resetBy == 1-s.end, BySession: d.resetBy == bySession}
}

// ResetError is what a reset stream's Read and Write fail with: it is
// tunnel.ErrStreamReset, and tunnel.ErrPeerAborted when the peer's Close
// reset the stream.
type ResetError struct {
	Aborted   bool // the peer's Close reset the stream
	BySession bool // the end of the session did
}

func (e *ResetError) Error() string {
	switch {
	case e.Aborted:
		return "tunneltest: stream reset by its peer"
	case e.BySession:
		return "tunneltest: stream reset by its session's end"
	}
	return "tunneltest: stream reset by this end"
}

func (e *ResetError) Is(target error) bool {
	return target == tunnel.ErrStreamReset || target == tunnel.ErrPeerAborted && e.Aborted
}

// Read reads what the peer wrote, io.EOF after its FIN, or the reset's
// error at once, bytes unread or not.
func (s *Stream) Read(p []byte) (int, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	d, me := &c.dirs[1-s.end], &c.ends[s.end]
	for {
		switch {
		case d.state == reset:
			return 0, s.errFor(d)
		case me.closed:
			return 0, net.ErrClosed
		case len(d.buf) > 0:
			if len(p) == 0 {
				return 0, nil
			}
			n := copy(p, d.buf)
			d.buf = d.buf[n:]
			c.broadcast() // room for the writer
			return n, nil
		case d.state == fin:
			me.readEOF = true
			return 0, io.EOF
		case len(p) == 0:
			return 0, nil
		}
		if c.wait(me.readDeadline) {
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// Write writes all of p unless the stream is reset, closed or its write
// deadline passes; it waits while the peer's unread bytes fill the buffer.
func (s *Stream) Write(p []byte) (int, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	d, me := &c.dirs[s.end], &c.ends[s.end]
	n := 0
	for {
		switch {
		case d.state == reset:
			return n, s.errFor(d)
		case me.closed || d.state == fin:
			return n, net.ErrClosed
		case n == len(p):
			return n, nil
		case len(d.buf) < c.limit:
			m := min(len(p)-n, c.limit-len(d.buf))
			d.buf = append(d.buf, p[n:n+m]...)
			n += m
			c.broadcast()
			continue
		}
		if c.wait(me.writeDeadline) {
			return n, os.ErrDeadlineExceeded
		}
	}
}

// CloseWrite sends a FIN: the peer reads what was written, then io.EOF.
func (s *Stream) CloseWrite() error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	d := &c.dirs[s.end]
	switch d.state {
	case reset:
		return s.errFor(d)
	case open:
		d.state = fin
		c.broadcast()
	}
	return nil
}

// Close is clean once this end has sent its FIN and read the peer's;
// before that it resets the directions still open, which the peer's Read
// and Write see at once as ErrPeerAborted.
func (s *Stream) Close() error {
	c := s.c
	c.mu.Lock()
	me := &c.ends[s.end]
	if me.closed {
		c.mu.Unlock()
		return nil
	}
	if !(c.dirs[s.end].state != open && me.readEOF) {
		c.resetOpen(s.end)
	}
	me.closed = true
	c.broadcast()
	both := c.ends[1-s.end].closed
	c.mu.Unlock()
	if both && c.onEnd != nil {
		c.onEnd()
	}
	return nil
}

// reset resets the stream as its session's end does.
func (s *Stream) reset() {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.resetOpen(bySession)
}

// PeerEnded tells how the peer's direction stands, without waiting: see
// tunnel.Stream.
func (s *Stream) PeerEnded() error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	d := &c.dirs[1-s.end]
	switch {
	case d.state == reset:
		return s.errFor(d)
	case d.state == fin && len(d.buf) == 0:
		return io.EOF
	}
	return nil
}

func (s *Stream) SetReadDeadline(t time.Time) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.ends[s.end].readDeadline = t
	s.c.broadcast() // waiters take the new deadline
	return nil
}

func (s *Stream) SetWriteDeadline(t time.Time) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.ends[s.end].writeDeadline = t
	s.c.broadcast()
	return nil
}

func (s *Stream) SetDeadline(t time.Time) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.ends[s.end].readDeadline = t
	s.c.ends[s.end].writeDeadline = t
	s.c.broadcast()
	return nil
}

var addrs = [2]Addr{"tunneltest-0", "tunneltest-1"}

func (s *Stream) LocalAddr() net.Addr  { return addrs[s.end] }
func (s *Stream) RemoteAddr() net.Addr { return addrs[1-s.end] }
