// Package relay copies bytes between two connections, both ways: the one
// copy loop of ferry, used by edge, origin and standalone alike.
package relay

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune a relay. The zero value holds the defaults.
type Options struct {
	// Idle closes both connections once no byte has moved either way for
	// this long. Zero means DefaultIdle, the official proxy's value; a
	// negative Idle is spent at once (config.Duration admits none).
	Idle time.Duration
	// HalfClosedIdle replaces Idle once one direction has ended, like
	// HAProxy's client-fin and server-fin timeouts: a peer that half-closed
	// and then went silent is not kept for the whole Idle. Zero means
	// DefaultHalfClosedIdle; a negative one is spent at once.
	HalfClosedIdle time.Duration
	// AToB and BToA, when set, count the bytes as they move.
	AToB, BToA Counter
}

// Counter counts bytes; a Prometheus counter is one.
type Counter interface{ Add(float64) }

const (
	DefaultIdle           = 200 * time.Second
	DefaultHalfClosedIdle = 10 * time.Second
)

// Result says what a relay moved and why it ended.
type Result struct {
	AToB, BToA int64 // bytes copied from a to b and from b to a
	// Err is the first failure, or nil when both directions ended with EOF.
	// It is ErrIdle after an idle timeout and the context's error when ctx
	// ended the relay.
	Err error
}

// ErrIdle is the Result.Err of a relay closed for idleness.
var ErrIdle = errors.New("idle timeout")

// BufferSize is the size of a copy buffer; buffers are pooled.
const BufferSize = 32 << 10

var buffers = sync.Pool{New: func() any { b := make([]byte, BufferSize); return &b }}

// Pipe relays between a and b until both directions have ended, then closes
// both. EOF read from one side ends only that direction: the other side's
// writing is closed (CloseWrite) and the opposite direction goes on. A
// failure either way, the idle timeout or the end of ctx closes both at once;
// a TCP connection is then reset (linger 0), and a tunnel stream too (see
// tunnel.Stream), so its peer sees an error, not an EOF. A read that fails
// with a reset is such a failure: a reset crosses the relay as a reset.
func Pipe(ctx context.Context, a, b net.Conn, o Options) Result {
	p := &pipe{a: a, b: b, opts: o}
	p.touch()
	p.tmu.Lock()
	p.timer = time.AfterFunc(cmp.Or(o.Idle, DefaultIdle), p.checkIdle)
	p.tmu.Unlock()
	p.stall = time.AfterFunc(time.Hour, p.checkStalls)
	p.stall.Stop()
	stop := context.AfterFunc(ctx, func() { p.abort(ctx.Err()) })

	var ab int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		ab = p.copy(0, b, a, o.AToB)
	}()
	ba := p.copy(1, a, b, o.BToA)
	<-done

	stop()
	p.tmu.Lock()
	p.finished = true
	p.timer.Stop()
	p.tmu.Unlock()
	p.stall.Stop()
	p.mu.Lock()
	err := p.err
	p.mu.Unlock()
	// An abort from another goroutine (the idle timer, a stall check, ctx)
	// wakes both copies with its deadline before it has reset both sides:
	// this end resets them too, so that neither gets a clean FIN first.
	if err != nil {
		Abort(a)
		Abort(b)
	} else {
		a.Close()
		b.Close()
	}
	return Result{AToB: ab, BToA: ba, Err: err}
}

type pipe struct {
	a, b  net.Conn
	opts  Options
	timer *time.Timer
	small [2][256]byte // each direction's buffer while cold

	last atomic.Int64 // unix nanoseconds of the last byte read either way

	// A write that blocks (its reader stopped reading) keeps its direction
	// from reading, and so from seeing its source's FIN or reset; stall
	// asks the source instead (checkStalls).
	writing  [2]atomic.Int64 // unix nanoseconds when each direction's current write began, 0 when none
	reading  [2]sync.Mutex   // held by each direction while it reads, so that no probe runs beside a read
	stall    *time.Timer
	watching atomic.Bool // stall is armed

	tmu        sync.Mutex // the timer and what decides its next expiry
	halfClosed bool
	finished   bool

	mu  sync.Mutex
	err error // the first failure
}

func (p *pipe) touch() { p.last.Store(time.Now().UnixNano()) }

// copy moves src to dst until EOF or failure, and returns the bytes moved.
// It is a named function so that stack dumps show it.
//
// An idle connection holds no copy buffer, only small: its 256 bytes, in
// the pipe. Reads go there while the direction is cold; a read that fills
// it makes the direction hot, and hot reads go to a pooled BufferSize
// buffer under a read deadline, so that a direction silent for HotIdle
// (half of it at least) gives its buffer back and turns cold again. The
// deadline moves only once half of it has passed, not at every chunk.
// Every read is written out before the next one, so no byte waits for more
// to come.
func (p *pipe) copy(d int, dst, src net.Conn, count Counter) int64 {
	small := p.small[d][:]
	var total int64
	var bp *[]byte      // the pooled buffer while hot
	var now time.Time   // when the last read returned
	var armed time.Time // the hot read deadline set on src; zero while cold
	defer func() {
		if bp != nil {
			buffers.Put(bp)
		}
	}()
	for {
		buf := small
		p.reading[d].Lock()
		if bp != nil {
			if armed.Sub(now) < HotIdle/2 {
				armed = now.Add(HotIdle)
				if !p.setReadDeadline(src, armed) {
					p.reading[d].Unlock()
					return total
				}
			}
			buf = *bp
		}
		n, rerr := src.Read(buf)
		p.reading[d].Unlock()
		now = time.Now()
		if n > 0 {
			p.last.Store(now.UnixNano())
			p.writing[d].Store(now.UnixNano())
			p.watch()
			w, werr := dst.Write(buf[:n])
			p.writing[d].Store(0)
			total += int64(w)
			if count != nil {
				count.Add(float64(w))
			}
			if werr != nil {
				p.abort(werr)
				return total
			}
			if bp == nil && n == len(small) {
				bp = buffers.Get().(*[]byte)
			}
		}
		if rerr == nil {
			continue
		}
		if bp != nil && isTimeout(rerr) && p.clearReadDeadline(d, src) {
			buffers.Put(bp)
			bp, armed = nil, time.Time{}
			continue
		}
		p.ended(dst, rerr)
		return total
	}
}

// HotIdle is how long a hot direction may wait for bytes before it gives
// its buffer back.
const HotIdle = time.Second

// clearReadDeadline is setReadDeadline's clearing, for direction d.
func (p *pipe) clearReadDeadline(d int, src net.Conn) bool {
	p.reading[d].Lock()
	defer p.reading[d].Unlock()
	return p.setReadDeadline(src, time.Time{})
}

// setReadDeadline sets src's read deadline for a hot read, or clears it
// (zero t) after a hot read timed out, unless the relay is aborting, whose
// own deadline must stand. It reports whether it did: whether to read on,
// and after a timeout, whether that timeout was HotIdle's, not an abort's.
func (p *pipe) setReadDeadline(src net.Conn, t time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return false
	}
	src.SetReadDeadline(t)
	return true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ended handles the read error that ended one direction: EOF half-closes
// dst, anything else aborts both.
func (p *pipe) ended(dst net.Conn, rerr error) {
	if rerr != io.EOF {
		p.abort(rerr)
		return
	}
	p.halfClose()
	if err := closeWrite(dst); err != nil {
		p.abort(err)
	}
}

// halfClose puts the relay on HalfClosedIdle: one direction has ended.
func (p *pipe) halfClose() {
	p.tmu.Lock()
	defer p.tmu.Unlock()
	if !p.halfClosed && !p.finished {
		p.halfClosed = true
		p.timer.Reset(cmp.Or(p.opts.HalfClosedIdle, DefaultHalfClosedIdle))
	}
}

// closeWrite ends c's sending direction, where c can. crypto/tls's
// CloseWrite sends its close_notify alert and leaves the TCP connection
// open, so the TCP FIN is sent too: a peer that reads the socket, or a TCP
// proxy between, learns of the end only from the FIN.
func closeWrite(c net.Conn) error {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return nil
	}
	if err := cw.CloseWrite(); err != nil {
		return err
	}
	if tc, ok := tlsConn(c); ok {
		if t, ok := tcpConn(tc.NetConn()); ok {
			return t.CloseWrite()
		}
	}
	return nil
}

// StallCheck is how long a write may block before the relay asks the
// direction's source, without reading it, whether its peer has ended: a
// reset then aborts the relay at once, and a FIN puts it on
// HalfClosedIdle, where the blocked write could otherwise hold both
// connections for the whole Idle (an upload to a target that stopped
// reading, from a client that gave up).
const StallCheck = time.Second

// A PeerEnder tells, without reading, whether its peer has ended its
// sending direction: a reset error, io.EOF after a FIN, nil otherwise.
// tunnel.Stream is one; the relay asks TCP connections itself.
type PeerEnder interface{ PeerEnded() error }

// watch arms stall for a write about to begin, unless it is armed.
func (p *pipe) watch() {
	if !p.watching.Load() && p.watching.CompareAndSwap(false, true) {
		p.stall.Reset(StallCheck)
	}
}

// checkStalls asks the source of each direction whose write has blocked
// for StallCheck how its peer stands, and rearms while a write is on.
func (p *pipe) checkStalls() {
	now := time.Now().UnixNano()
	for d, src := range []net.Conn{p.a, p.b} {
		since := p.writing[d].Load()
		if since == 0 || now-since < int64(StallCheck) || !p.reading[d].TryLock() {
			continue
		}
		err := peerEnded(src)
		p.reading[d].Unlock()
		switch {
		case err == io.EOF:
			p.halfClose()
		case err != nil:
			p.abort(err)
		}
	}
	// Disarmed first, then rearmed if a write is on, so that a write that
	// began meanwhile, and found stall armed, is not left unwatched.
	p.watching.Store(false)
	p.tmu.Lock()
	finished := p.finished
	p.tmu.Unlock()
	p.mu.Lock()
	aborted := p.err != nil
	p.mu.Unlock()
	if !finished && !aborted && (p.writing[0].Load() != 0 || p.writing[1].Load() != 0) {
		p.watch()
	}
}

// peerEnded asks c how its peer stands (see PeerEnder).
func peerEnded(c net.Conn) error {
	if pe, ok := c.(PeerEnder); ok {
		return pe.PeerEnded()
	}
	if tc, ok := tcpConn(c); ok {
		return tcpPeerEnded(tc)
	}
	return nil
}

// abort records err, if it is the first, and unblocks and closes both sides.
func (p *pipe) abort(err error) {
	p.mu.Lock()
	first := p.err == nil
	if first {
		p.err = err
	}
	p.mu.Unlock()
	if !first {
		return
	}
	for _, c := range []net.Conn{p.a, p.b} {
		// A deadline wakes reads and writes blocked in any net.Conn,
		// including stream types whose Close only ends one direction.
		c.SetDeadline(time.Unix(1, 0))
		Abort(c)
	}
}

// Abort closes c, resetting the TCP connection under it where there is one,
// so that its peer sees an error rather than a clean end.
func Abort(c net.Conn) {
	if tc, ok := tcpConn(c); ok {
		tc.SetLinger(0)
		// First, so that a TLS connection over it does not wait 5 s to
		// send its close alert to a peer that does not read.
		tc.Close()
	}
	c.Close()
}

// tcpConn finds the TCP connection under c.
func tcpConn(c net.Conn) (*net.TCPConn, bool) { return under[*net.TCPConn](c) }

// tlsConn finds the TLS connection under c.
func tlsConn(c net.Conn) (*tls.Conn, bool) { return under[*tls.Conn](c) }

// under finds the connection of type T in c or under it, through wrappers
// that expose theirs as crypto/tls's does (NetConn).
func under[T net.Conn](c net.Conn) (T, bool) {
	for range 4 {
		if t, ok := c.(T); ok {
			return t, true
		}
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = w.NetConn()
	}
	var zero T
	return zero, false
}

func (p *pipe) checkIdle() {
	p.tmu.Lock()
	if p.finished {
		p.tmu.Unlock()
		return
	}
	limit := cmp.Or(p.opts.Idle, DefaultIdle)
	if p.halfClosed {
		limit = cmp.Or(p.opts.HalfClosedIdle, DefaultHalfClosedIdle)
	}
	quiet := time.Duration(time.Now().UnixNano() - p.last.Load())
	if quiet < limit {
		p.timer.Reset(limit - quiet)
		p.tmu.Unlock()
		return
	}
	p.tmu.Unlock()
	p.abort(ErrIdle)
}
