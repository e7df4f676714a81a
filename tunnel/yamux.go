package tunnel

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/hashicorp/yamux"
)

// StreamWindow is yamux's largest receive window per stream, on both ends.
// One stream's throughput is capped at window/RTT: yamux's default 256 KiB
// allows 2.6 MB/s at 100 ms, 8 MiB allows 84 MB/s.
//
// yamux grants the whole window when a stream opens, so a client that stops
// reading lets its stream buffer up to the window at the edge: 8 MiB, the
// least that keeps a 100 ms link above 80 MB/s, bounds that.
const StreamWindow = 8 << 20

func yamuxConfig(log *slog.Logger) *yamux.Config {
	c := yamux.DefaultConfig()
	c.AcceptBacklog = 4096
	// The control stream pings (control.go), over QUIC too.
	c.EnableKeepAlive = false
	c.MaxStreamWindowSize = StreamWindow
	// yamux closes the whole session when a stream's SYN is not acknowledged
	// in time; keepalives already detect a dead session, and one slow accept
	// must not kill every other user's stream.
	c.StreamOpenTimeout = 0
	// A frame may wait behind others on a slow link; 10 s, the default,
	// kills sessions on links of a few Mbit/s under load.
	c.ConnectionWriteTimeout = 30 * time.Second
	c.LogOutput = nil
	c.Logger = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	return c
}

// newYamux runs a yamux session over conn, set up by the hellos: the client
// side on the edge, the server side on the origin. ctx bounds the wait for
// the control stream.
func newYamux(ctx context.Context, conn io.ReadWriteCloser, end End, peerFlags byte) (Session, error) {
	cfg := yamuxConfig(end.Log)
	if !end.Origin {
		s, err := yamux.Client(conn, cfg)
		if err != nil {
			return nil, err
		}
		ctl, err := s.OpenStream()
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("open control stream: %w", err)
		}
		return newSession(yamuxSession{s}, yamuxStream{ctl}, end, peerFlags), nil
	}
	s, err := yamux.Server(conn, cfg)
	if err != nil {
		return nil, err
	}
	ctl, err := s.AcceptStreamWithContext(ctx)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("no control stream: %w", err)
	}
	return newSession(yamuxSession{s}, yamuxStream{ctl}, end, peerFlags), nil
}

type yamuxSession struct{ s *yamux.Session }

func (y yamuxSession) OpenStream(ctx context.Context) (Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := y.s.OpenStream()
	if err != nil {
		return nil, err
	}
	return yamuxStream{st}, nil
}

func (y yamuxSession) AcceptStream(ctx context.Context) (Stream, error) {
	st, err := y.s.AcceptStreamWithContext(ctx)
	if err != nil {
		return nil, err
	}
	return yamuxStream{st}, nil
}

func (y yamuxSession) Done() <-chan struct{} { return y.s.CloseChan() }
func (y yamuxSession) Close() error          { return y.s.Close() }

// yamuxStream adapts a yamux stream. yamux's Close already only ends the
// sending direction (a FIN); yamux frees the stream once both sides have.
type yamuxStream struct{ *yamux.Stream }

func (s yamuxStream) CloseWrite() error { return s.Stream.Close() }

// frameConn makes each yamux frame one WebSocket message and, with the
// corkConn under the WebSocket, one write system call: yamux writes a
// frame's 12-byte header and its body with two calls. Only yamux's send
// loop writes, so the pending header needs no lock. Reads go through a
// buffer of readBuffer bytes: yamux reads 4 KiB at a time, and each read
// would otherwise be a system call.
type frameConn struct {
	rw    io.ReadWriter // the WebSocket's messages
	r     *bufio.Reader
	cork  *corkConn // nil when the connection under the WebSocket is not one
	buf   []byte
	close func() error // ends the transport at once
}

const readBuffer = 64 << 10

func newFrameConn(rw io.ReadWriter, close func() error, cork *corkConn) *frameConn {
	return &frameConn{rw: rw, r: bufio.NewReaderSize(rw, readBuffer), cork: cork, close: close}
}

func (c *frameConn) Read(p []byte) (int, error) { return c.r.Read(p) }

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

const (
	yamuxHeaderLen = 12
	yamuxTypeData  = 0
)

func (c *frameConn) Write(p []byte) (int, error) {
	if len(c.buf) == 0 && len(p) == yamuxHeaderLen && p[1] == yamuxTypeData && binary.BigEndian.Uint32(p[8:12]) > 0 {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	msg := p
	if len(c.buf) > 0 {
		c.buf = append(c.buf, p...)
		msg = c.buf
	}
	err := c.write(msg)
	c.buf = c.buf[:0]
	if err != nil {
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
