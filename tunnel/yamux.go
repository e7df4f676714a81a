package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-yamux/v5"
)

// StreamWindow is the largest receive window of a yamux stream, on both
// ends. go-yamux grants window back only once half of it was read, so a
// steady stream keeps about half its window in flight: one stream's
// throughput is capped near window/(2 RTT), 168 MB/s at 100 ms with
// 32 MiB (measured over the bench's 100 ms relay, go-yamux alone: 16 MiB
// gave 75 MB/s, 32 MiB 135, 64 MiB about 170). Two streams at this window
// fill SessionBudget.
//
// A stream starts with yamux's 256 KiB, the protocol's initial window, and
// its window doubles at a window update only when the reader consumed the
// last half window within four round trips: a stream grows only while its
// reader keeps up.
const StreamWindow = 32 << 20

// ColdWindow and Proof bound what a client that never reads costs: a
// stream's window grows past ColdWindow only once its reader has proved it
// keeps up, by consuming Proof bytes more, each half window within four
// round trips (each time go-yamux would have grown the window). The relay
// of a client that does not read still reads from its stream until the
// kernel's socket buffers towards the client are full, fast enough on a
// short link for go-yamux to double the window at every update (to 4 MiB on
// loopback, measured); Proof is more than those buffers take from a client
// that reads nothing (4 MiB on loopback with Linux's default tcp_wmem, the
// edge's send buffer; the client's receive buffer stays small while it
// does not read), so that window stops at ColdWindow. A reader that keeps
// up pays Proof at ColdWindow, where it moves ColdWindow/(2 RTT): 1.2 s at
// 100 ms, 10 ms on loopback. 6 MiB, not 8: 1.5 times what the buffers took
// rather than twice, for 0.4 s less ramp on a 100 ms link.
const (
	ColdWindow = 1 << 20
	Proof      = 6 << 20
)

// SessionBudget is what one session's receive windows may add up to, over
// all its streams, on each end: the edge's for downloads, the origin's for
// uploads. A window grows only while the budget has room, so that streams
// whose readers stopped hold at most the budget between them, while a
// stream that reads on keeps at least its window (the initial 256 KiB
// allows 2.6 GB/s on loopback's round trip, 26 MB/s at 10 ms). 64 MiB lets
// two streams run at StreamWindow at once.
//
// Initial windows are granted even beyond the budget: yamux lets a peer
// send 256 KiB on a new stream before any window update, so refusing one
// would bound nothing, and the accepting side can only refuse by ending
// the whole session. They count against the budget, so that while many
// streams are open windows stop growing. An idle stream holds nothing:
// yamux buffers each frame until it is read, then frees it.
const SessionBudget = 64 << 20

func yamuxConfig(log *slog.Logger) *yamux.Config {
	c := yamux.DefaultConfig()
	c.AcceptBacklog = 4096
	// As QUIC's, and one for the control stream. yamux's default, 1000,
	// would reset the 1001st client's stream.
	c.MaxIncomingStreams = MaxStreamsPerSession + 1
	// The control stream pings (control.go), over QUIC too.
	c.EnableKeepAlive = false
	c.MaxStreamWindowSize = StreamWindow
	// A frame may wait behind others on a slow link; 10 s, the default,
	// kills sessions on links of a few Mbit/s under load.
	c.ConnectionWriteTimeout = 30 * time.Second
	// frameConn's messages are read in 64 KiB: yamux reads a frame's
	// header, then its body, and each would otherwise be a system call.
	c.ReadBufSize = readBuffer
	c.LogOutput = slog.NewLogLogger(log.Handler(), slog.LevelDebug).Writer()
	return c
}

// budget is a session's memory manager: yamux asks it for each stream's
// initial window (priority 255) and for each growth of one (lower), and
// tells it when a stream has ended.
type budget struct {
	mu    sync.Mutex
	used  int
	limit int
}

func newBudget(limit int) *budget { return &budget{limit: limit} }

func (b *budget) span() (yamux.MemoryManager, error) { return &span{b: b}, nil }

// span is one stream's share of its session's budget. Its fields are under
// b.mu.
type span struct {
	b      *budget
	held   int // the stream's window
	proved int // what the reader consumed fast at ColdWindow
}

var errBudget = errors.New("session receive budget spent")

func (s *span) ReserveMemory(size int, prio uint8) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if prio < 255 {
		if s.held+size > ColdWindow && s.proved < Proof {
			// size is the window: go-yamux doubles it, after half of it
			// was consumed within four round trips.
			s.proved += s.held / 2
			return errBudget
		}
		if s.b.used+size > s.b.limit {
			return errBudget
		}
	}
	s.b.used += size
	s.held += size
	return nil
}

func (s *span) ReleaseMemory(size int) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	size = min(size, s.held)
	s.b.used -= size
	s.held -= size
}

func (s *span) Done() {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.used -= s.held
	s.held = 0
}

// newYamux runs a yamux session over conn, set up by the hellos: the client
// side on the edge, the server side on the origin. ctx bounds the wait for
// the control stream.
//
// On a slow transport (paced) bulk streams give way to the others (see
// pace.go).
func newYamux(ctx context.Context, conn net.Conn, end End, peerFlags byte, paced bool) (Session, error) {
	cfg := yamuxConfig(end.Log)
	b := newBudget(SessionBudget)
	var pc *paceConn
	if paced {
		pc = newPaceConn(conn)
		conn = pc
	}
	hc := &heardConn{Conn: conn}
	hc.heard.Store(time.Now().UnixNano())
	conn = hc
	if !end.Origin {
		s, err := yamux.Client(conn, cfg, b.span)
		if err != nil {
			return nil, err
		}
		ctl, err := s.OpenStream(ctx)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("open control stream: %w", err)
		}
		return newSession(&yamuxSession{s: s, heard: hc, pace: pc}, &yamuxStream{Stream: ctl}, end, peerFlags), nil
	}
	s, err := yamux.Server(conn, cfg, b.span)
	if err != nil {
		return nil, err
	}
	y := &yamuxSession{s: s, heard: hc, pace: pc}
	ctl, err := y.AcceptStream(ctx)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("no control stream: %w", err)
	}
	return newSession(y, ctl, end, peerFlags), nil
}

// heardConn keeps when its last read returned bytes: the peer's frames of
// any stream, so that a session whose pong is queued behind data is not
// taken for stalled.
type heardConn struct {
	net.Conn
	heard atomic.Int64 // unix nanoseconds
}

func (c *heardConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.heard.Store(time.Now().UnixNano())
	}
	return n, err
}

type yamuxSession struct {
	s     *yamux.Session
	heard *heardConn
	pace  *paceConn // nil but on a slow transport

	acceptOnce sync.Once
	accepted   chan *yamux.Stream
}

func (y *yamuxSession) OpenStream(ctx context.Context) (Stream, error) {
	st, err := y.s.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	return &yamuxStream{Stream: st, session: y}, nil
}

// AcceptStream waits for the next stream or the end of ctx. yamux's own
// AcceptStream takes no context, so one goroutine per session accepts
// for every caller; it ends with the session, and a stream it holds then
// is reset.
func (y *yamuxSession) AcceptStream(ctx context.Context) (Stream, error) {
	y.acceptOnce.Do(func() {
		y.accepted = make(chan *yamux.Stream)
		go y.acceptLoop()
	})
	select {
	case st := <-y.accepted:
		return &yamuxStream{Stream: st, session: y}, nil
	case <-y.s.CloseChan():
		return nil, yamux.ErrSessionShutdown
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (y *yamuxSession) acceptLoop() {
	for {
		st, err := y.s.AcceptStream()
		if err != nil {
			return
		}
		select {
		case y.accepted <- st:
		case <-y.s.CloseChan():
			st.Reset()
			return
		}
	}
}

func (y *yamuxSession) Heard() time.Time { return time.Unix(0, y.heard.heard.Load()) }

func (y *yamuxSession) Done() <-chan struct{} { return y.s.CloseChan() }
func (y *yamuxSession) Close() error          { return y.s.Close() }

// yamuxAbortCode is the error code of the resets a Close sends: not 0, the
// code of go-yamux's own resets (of streams beyond a limit or backlog, or
// during a GoAway), so that the peer tells an abort from a refusal.
const yamuxAbortCode = 1

// yamuxStream adapts a yamux stream to Stream's contract: CloseWrite sends a
// FIN; Close once both directions have ended frees the stream; Close before
// that resets it (an abort), and the peer's Read and Write fail at once with
// ErrStreamReset.
type yamuxStream struct {
	*yamux.Stream
	session *yamuxSession // nil for the control stream
	pace    *pacer        // set by SetBulk on a slow transport; the writer's

	mu            sync.Mutex
	wroteClosed   bool
	readEnded     bool
	readDeadline  time.Time // the last one set, for PeerEnded to put back
	writeDeadline time.Time // the last one set, for a paced write's wait
}

// SetBulk marks the stream as one that carries bulk (media): on a slow
// transport it then gives way to the session's other streams (pace.go);
// elsewhere it changes nothing. Call it before the stream's first Write,
// from its writer.
func (s *yamuxStream) SetBulk() {
	if s.session == nil || s.session.pace == nil || s.pace != nil {
		return
	}
	s.pace = newPacer(s.session.pace, s.Stream.StreamID(), s.session.s.CloseChan())
}

func (s *yamuxStream) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	s.writeDeadline = t
	s.mu.Unlock()
	return s.Stream.SetWriteDeadline(t)
}

func (s *yamuxStream) deadline() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeDeadline
}

func (s *yamuxStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	if err != nil {
		if err == io.EOF {
			s.mu.Lock()
			s.readEnded = true
			s.mu.Unlock()
			return n, err
		}
		err = resetError(err)
	}
	return n, err
}

func (s *yamuxStream) Write(p []byte) (int, error) {
	var n int
	var err error
	if s.pace != nil {
		n, err = s.pace.write(p, s.Stream.Write, s.deadline)
	} else {
		n, err = s.Stream.Write(p)
	}
	if err != nil {
		err = resetError(err)
	}
	return n, err
}

func (s *yamuxStream) CloseWrite() error {
	s.mu.Lock()
	s.wroteClosed = true
	s.mu.Unlock()
	return resetError(s.Stream.CloseWrite())
}

func (s *yamuxStream) Close() error {
	if s.pace != nil {
		s.pace.close()
	}
	s.mu.Lock()
	clean := s.wroteClosed && s.readEnded
	s.wroteClosed = true
	s.mu.Unlock()
	if clean {
		return s.Stream.Close()
	}
	return s.Stream.ResetWithError(yamuxAbortCode)
}

// resetError marks the errors of a reset stream (by either end, or by the
// end of its session) as ErrStreamReset, and the peer's aborts as
// ErrPeerAborted.
func resetError(err error) error {
	if err == nil || !errors.Is(err, yamux.ErrStreamReset) {
		return err
	}
	var se *yamux.StreamError
	aborted := errors.As(err, &se) && se.Remote && se.ErrorCode == yamuxAbortCode
	return &streamReset{err: err, aborted: aborted}
}

// frameConn makes each yamux frame one WebSocket message and, with the
// corkConn under the WebSocket, one write system call: yamux writes a
// frame, header and body, with one call, from one goroutine.
type frameConn struct {
	rw    io.ReadWriter // the WebSocket's messages
	conn  net.Conn      // the connection under the WebSocket; may be nil
	cork  *corkConn     // nil when the connection under the WebSocket is not one
	close func() error  // ends the transport at once
}

const readBuffer = 64 << 10

func newFrameConn(rw io.ReadWriter, close func() error, conn net.Conn) *frameConn {
	return &frameConn{rw: rw, conn: conn, cork: corkOf(conn), close: close}
}

func (c *frameConn) Read(p []byte) (int, error) { return c.rw.Read(p) }

// Close ends the WebSocket without a closing handshake: yamux closes its
// connection only once the session is over, and a handshake with a dead
// peer would hold the closer for seconds. The socket under the cork closes
// first: a send stuck there must not hold TLS's close alert for its 5 s.
func (c *frameConn) Close() error {
	if c.cork != nil {
		c.cork.Conn.Close()
	}
	return c.close()
}

func (c *frameConn) Write(p []byte) (int, error) {
	if err := c.write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// write sends msg as one message, corked.
func (c *frameConn) write(msg []byte) error {
	if c.cork == nil {
		_, err := c.rw.Write(msg)
		return err
	}
	c.cork.cork()
	_, err := c.rw.Write(msg)
	if uerr := c.cork.uncork(); err == nil {
		err = uerr
	}
	return err
}

// SetWriteDeadline bounds yamux's writes (its ConnectionWriteTimeout) on
// the socket itself, under TLS and the cork, where a corked write lands.
func (c *frameConn) SetWriteDeadline(t time.Time) error {
	switch {
	case c.cork != nil:
		return c.cork.Conn.SetWriteDeadline(t)
	case c.conn != nil:
		return c.conn.SetWriteDeadline(t)
	}
	return nil
}

// yamux sets no read deadline: a session's reads end by Close.
func (c *frameConn) SetReadDeadline(time.Time) error { return nil }
func (c *frameConn) SetDeadline(t time.Time) error   { return c.SetWriteDeadline(t) }

func (c *frameConn) LocalAddr() net.Addr {
	if c.conn != nil {
		return c.conn.LocalAddr()
	}
	return &net.TCPAddr{}
}

func (c *frameConn) RemoteAddr() net.Addr {
	if c.conn != nil {
		return c.conn.RemoteAddr()
	}
	return &net.TCPAddr{}
}
