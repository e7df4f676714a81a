// Package relay copies bytes between two connections, both ways: the one
// copy loop of ferry, used by edge, origin and standalone alike.
package relay

import (
	"context"
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
	// this long. Zero means DefaultIdle, the official proxy's value.
	Idle time.Duration
	// HalfClosedIdle replaces Idle once one direction has ended, like
	// HAProxy's client-fin and server-fin timeouts: a peer that half-closed
	// and then went silent is not kept for the whole Idle. Zero means
	// DefaultHalfClosedIdle.
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

func (o Options) idle() time.Duration {
	if o.Idle > 0 {
		return o.Idle
	}
	return DefaultIdle
}

func (o Options) halfClosedIdle() time.Duration {
	if o.HalfClosedIdle > 0 {
		return o.HalfClosedIdle
	}
	return DefaultHalfClosedIdle
}

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
	p.timer = time.AfterFunc(o.idle(), p.checkIdle)
	p.tmu.Unlock()
	stop := context.AfterFunc(ctx, func() { p.abort(ctx.Err()) })

	var ab int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		ab = p.copy(b, a, p.small[0][:], o.AToB)
	}()
	ba := p.copy(a, b, p.small[1][:], o.BToA)
	<-done

	stop()
	p.tmu.Lock()
	p.finished = true
	p.timer.Stop()
	p.tmu.Unlock()
	a.Close()
	b.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	return Result{AToB: ab, BToA: ba, Err: p.err}
}

type pipe struct {
	a, b  net.Conn
	opts  Options
	timer *time.Timer
	small [2][256]byte // each direction's buffer while cold

	last atomic.Int64 // unix nanoseconds of the last byte read either way

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
func (p *pipe) copy(dst, src net.Conn, small []byte, count Counter) int64 {
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
		if bp != nil {
			if armed.Sub(now) < HotIdle/2 {
				armed = now.Add(HotIdle)
				if !p.setReadDeadline(src, armed) {
					return total
				}
			}
			buf = *bp
		}
		n, rerr := src.Read(buf)
		now = time.Now()
		if n > 0 {
			p.last.Store(now.UnixNano())
			w, werr := dst.Write(buf[:n])
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
		if bp != nil && isTimeout(rerr) && p.setReadDeadline(src, time.Time{}) {
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
	p.tmu.Lock()
	if !p.halfClosed && !p.finished {
		p.halfClosed = true
		p.timer.Reset(p.opts.halfClosedIdle())
	}
	p.tmu.Unlock()
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil {
			p.abort(err)
		}
	}
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

// tcpConn finds the TCP connection under c, through wrappers that expose
// theirs as crypto/tls's does.
func tcpConn(c net.Conn) (*net.TCPConn, bool) {
	for range 4 {
		switch w := c.(type) {
		case *net.TCPConn:
			return w, true
		case interface{ NetConn() net.Conn }:
			c = w.NetConn()
		default:
			return nil, false
		}
	}
	return nil, false
}

func (p *pipe) checkIdle() {
	p.tmu.Lock()
	if p.finished {
		p.tmu.Unlock()
		return
	}
	limit := p.opts.idle()
	if p.halfClosed {
		limit = p.opts.halfClosedIdle()
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
