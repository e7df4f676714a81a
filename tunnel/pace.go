package tunnel

import (
	"encoding/binary"
	"net"
	"sync"
	"time"
)

// On a slow link (the dns transport's: tens of KB/s) a chat message waits
// behind whatever other streams have queued before it, and yamux lets each
// stream queue its whole window, 256 KiB at least: measured, a 200-byte
// round trip beside a download took 2.7 s at answers of 1232 bytes and
// 17 s at 512, against 3 ms on an idle session. So on such a session a
// bulk stream (media, marked by SetBulk) writes in small frames, each only
// once the frames it wrote before have left yamux for the transport, but
// bulkQueued: a chat frame then waits behind at most that much of each
// download in yamux, and behind what the transport itself holds. A
// download is still carried as fast as the link drains; it only gives way.
const (
	bulkFrame  = 4 << 10
	bulkQueued = 8 << 10
)

// SetBulk marks st as a stream of bulk (media): on a slow transport it
// gives way to the session's other streams; elsewhere nothing changes. Call
// it before st's first Write.
func SetBulk(st Stream) {
	if b, ok := st.(interface{ SetBulk() }); ok {
		b.SetBulk()
	}
}

// paceConn sits between yamux and its transport on a slow session and
// counts, for each bulk stream, the bytes of its data frames that yamux
// has handed to the transport. yamux writes each frame, header and body,
// with one Write from one goroutine (its send loop).
type paceConn struct {
	net.Conn

	mu      sync.Mutex
	sent    map[uint32]int64 // bulk stream → data bytes written through
	changed chan struct{}    // closed and replaced when sent grows
}

func newPaceConn(c net.Conn) *paceConn {
	return &paceConn{Conn: c, sent: map[uint32]int64{}, changed: make(chan struct{})}
}

// yamux's frame header: version, type, flags (2), stream ID (4), length
// (4); type 0 is data, whose length is its body's.
const (
	yamuxHeader   = 12
	yamuxTypeData = 0
)

func (c *paceConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n == len(p) && len(p) >= yamuxHeader && p[1] == yamuxTypeData {
		id := binary.BigEndian.Uint32(p[4:8])
		c.mu.Lock()
		if _, bulk := c.sent[id]; bulk {
			c.sent[id] += int64(binary.BigEndian.Uint32(p[8:12]))
			close(c.changed)
			c.changed = make(chan struct{})
		}
		c.mu.Unlock()
	}
	return n, err
}

// track starts counting stream id's bytes; untrack stops.
func (c *paceConn) track(id uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent[id] = 0
}

func (c *paceConn) untrack(id uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sent, id)
}

// through returns how many of stream id's bytes went to the transport,
// and a channel closed when that may have grown.
func (c *paceConn) through(id uint32) (int64, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent[id], c.changed
}

// pacer is a bulk stream's share of its paceConn.
type pacer struct {
	conn      *paceConn
	id        uint32
	written   int64           // bytes handed to yamux; the writer's only
	done      <-chan struct{} // the session's end
	closed    chan struct{}   // closed by close: the stream's
	closeOnce sync.Once
}

func newPacer(c *paceConn, id uint32, done <-chan struct{}) *pacer {
	c.track(id)
	return &pacer{conn: c, id: id, done: done, closed: make(chan struct{})}
}

// close ends the pacing at the stream's Close: a write waiting ends, with
// net.ErrClosed, and the stream is no longer counted.
func (pc *pacer) close() {
	pc.closeOnce.Do(func() {
		close(pc.closed)
		pc.conn.untrack(pc.id)
	})
}

// write writes p with write in frames of bulkFrame at most, each once the
// stream's earlier bytes but bulkQueued have gone through; it gives up
// waiting at the session's end or deadline.
func (pc *pacer) write(p []byte, write func([]byte) (int, error), deadline func() time.Time) (int, error) {
	total := 0
	for len(p) > 0 {
		for {
			sent, changed := pc.conn.through(pc.id)
			if pc.written-sent <= bulkQueued {
				break
			}
			if err := pc.wait(changed, deadline()); err != nil {
				return total, err
			}
		}
		chunk := p[:min(len(p), bulkFrame)]
		n, err := write(chunk)
		pc.written += int64(n)
		total += n
		if err != nil {
			return total, err
		}
		p = p[n:]
	}
	return total, nil
}

// wait waits for changed, until the session's end or deadline (none when
// zero).
func (pc *pacer) wait(changed <-chan struct{}, deadline time.Time) error {
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-changed:
		return nil
	case <-pc.done:
		return ErrSessionEnded
	case <-pc.closed:
		return net.ErrClosed
	case <-timeout:
		return errPaceTimeout
	}
}

// errPaceTimeout is a paced write's past its deadline: a net.Error that
// times out, as a Write's past its deadline is.
var errPaceTimeout error = &net.OpError{Op: "write", Net: "tunnel", Err: paceTimeout{}}

type paceTimeout struct{}

func (paceTimeout) Error() string   { return "i/o timeout" }
func (paceTimeout) Timeout() bool   { return true }
func (paceTimeout) Temporary() bool { return true }
