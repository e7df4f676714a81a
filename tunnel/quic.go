package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// ALPN is the application protocol of ferry's QUIC tunnels: HTTP/3's, so
// that a tunnel listener is an HTTP/3 server to everyone else (h3.go).
const ALPN = http3.NextProtoH3

// MaxStreamsPerSession is how many streams an origin lets one QUIC session
// have open at once: at least an edge's FERRY_EDGE_MAX_CONNS (27,500 by
// default). quic-go's default is 100.
//
// The trade-off: quic-go takes a connection's stream limit from its Config
// before the handshake and has no way to raise it afterwards, so the limit
// an edge needs is the one every peer sees. An origin's listener therefore
// advertises initial_max_streams_bidi = MaxStreamsPerSession+1 to anyone
// who completes a handshake (real HTTP/3 servers advertise about 100), and
// an origin that dials an edge (reverse mode) advertises MaxStreamsPerSession
// in its Initial, which anyone on the path can decrypt (an HTTP/3 client
// advertises 0). The alternatives cost more: at 100, an edge would need a
// QUIC connection per 100 clients. What a stranger can make an origin hold
// with those streams stays an HTTP/3 server's: h3MaxRequests at a time are
// served, the others wait unread (h3.go).
const MaxStreamsPerSession = 32768

// QUICStreamWindow is the largest receive window of a QUIC stream; one
// stream's throughput is capped at window/RTT (168 MB/s at 100 ms).
const QUICStreamWindow = 16 << 20

// Generic QUIC error codes: a refused connection learns nothing.
const (
	quicNoError     quic.ApplicationErrorCode = 0
	quicStreamReset quic.StreamErrorCode      = 0
)

// quicWindows sets c's windows for long fat links; quic-go tunes each
// stream's window up to the maximum as the stream needs it. Only the
// initial windows cross the wire (as transport parameters), and those keep
// quic-go's defaults, as its HTTP/3 client and server do.
func quicWindows(c *quic.Config) *quic.Config {
	c.MaxStreamReceiveWindow = QUICStreamWindow
	c.MaxConnectionReceiveWindow = 4 * QUICStreamWindow
	return c
}

// quicDialConfig is the configuration of the connections end dials. Anyone
// on the path can decrypt a client's Initial (RFC 9001 §5.2) and read its
// transport parameters, so they are those of quic-go's own HTTP/3 client
// (http3/client.go defaultQuicConfig, http3/transport.go init): one QUIC
// version, no bidirectional streams from the server, unidirectional ones at
// quic-go's default, the 30 s idle timeout, a keepalive every 10 s. The
// exception is an origin dialling an edge: the edge opens the session's
// streams, and the origin must let it (MaxStreamsPerSession).
//
// A path that stops carrying packets (UDP blocked mid-session, as censors
// do) is still given up within about 9 s, not at the 30 s idle timeout:
// the session's pings (control.go, KeepAlive and PingTimeout) close a
// session whose peer has gone quiet, as they do over yamux.
func quicDialConfig(end End) *quic.Config {
	c := &quic.Config{
		Versions:           []quic.Version{quic.Version1},
		MaxIncomingStreams: -1,
		KeepAlivePeriod:    10 * time.Second,
	}
	if end.Origin {
		c.MaxIncomingStreams = MaxStreamsPerSession
	}
	return quicWindows(c)
}

// quicListenConfig is the configuration of the connections end's listener
// accepts: that of quic-go's HTTP/3 server (http3/server.go: quic-go's
// defaults, 0-RTT allowed), except on an origin the stream limit an edge
// needs (MaxStreamsPerSession, and one for the control stream).
func quicListenConfig(end End) *quic.Config {
	c := &quic.Config{Allow0RTT: true}
	if end.Origin {
		c.MaxIncomingStreams = MaxStreamsPerSession + 1
	}
	return quicWindows(c)
}

// QUICDialer dials a QUIC tunnel listener: an origin's, or in reverse mode
// an edge's.
type QUICDialer struct {
	addr string // HOST:PORT dialled
	tls  *tls.Config
	end  End
}

// newQUICDialer returns a dialer of u, a quic:// URL. u.Connect and u.SNI
// act as for newWSDialer.
func newQUICDialer(u URL, end End) *QUICDialer {
	addr, sni := u.Host, u.SNI
	if sni == "" {
		sni, _, _ = net.SplitHostPort(addr)
	}
	if u.Connect != "" {
		addr = u.Connect
	}
	return &QUICDialer{
		addr: addr,
		// As an HTTP/3 client's: the server name and h3, nothing else.
		// Always bound: the hellos prove the secret over this session.
		tls: &tls.Config{ServerName: sni, NextProtos: []string{ALPN}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13},
		end: end,
	}
}

// Dial connects and returns a session; ctx bounds only the handshake.
func (d *QUICDialer) Dial(ctx context.Context) (Session, error) {
	ctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
	defer cancel()
	conn, err := quic.DialAddr(ctx, d.addr, d.tls, quicDialConfig(d.end))
	if err != nil {
		return nil, fmt.Errorf("quic dial %s: %w", d.addr, err)
	}
	s, err := dialHellos(ctx, conn, d.end)
	if err != nil {
		conn.CloseWithError(quicNoError, "")
		return nil, fmt.Errorf("quic %s: %w", d.addr, err)
	}
	return s, nil
}

// dialHellos opens the connection's first stream, sends the hello on it as
// an HTTP/3 frame (h3.go), checks the listener's, and keeps the stream as
// the session's control stream.
func dialHellos(ctx context.Context, conn *quic.Conn, end End) (Session, error) {
	cs := conn.ConnectionState().TLS
	ekm, err := exporter(&cs)
	if err != nil {
		return nil, err
	}
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("no hello: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		st.SetDeadline(dl)
	}
	pflags, err := helloFirst(&helloFramer{ReadWriter: st}, helloKey(end.Secret), ekm, nil, end.flags())
	if err != nil && ctx.Err() != nil {
		// A listener that does not take the hello says nothing: to it
		// this is an HTTP/3 client.
		err = fmt.Errorf("%w: no answer to the hello (a wrong FERRY_SECRET, or no ferry listener there?)", err)
	}
	if err != nil {
		st.CancelRead(quicStreamReset)
		st.CancelWrite(quicStreamReset)
		return nil, err
	}
	st.SetDeadline(time.Time{})
	return newQUICSession(conn, st, end, pflags, nil), nil
}

// newQUICSession runs a session set up by the hellos over conn, with ctl
// as its control stream; ended, when set, runs once when it closes.
func newQUICSession(conn *quic.Conn, ctl *quic.Stream, end End, pflags byte, ended func()) Session {
	s := &quicSession{conn: conn, ended: ended}
	s.heard.Store(time.Now().UnixNano())
	return newSession(s, &quicStream{Stream: ctl, conn: conn, heard: &s.heard}, end, pflags)
}

type quicSession struct {
	conn  *quic.Conn
	ended func() // an accepted session's: counts it out of its listener
	heard atomic.Int64
}

// Heard is when a stream of the session last read bytes (unix nanoseconds
// in heard): the peer's data of any stream, so that a session whose pong
// waits behind data is not taken for stalled. quic-go tells nothing of the
// packets it receives.
func (s *quicSession) Heard() time.Time { return time.Unix(0, s.heard.Load()) }

func (s *quicSession) OpenStream(ctx context.Context) (Stream, error) {
	st, err := s.conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return &quicStream{Stream: st, conn: s.conn, heard: &s.heard}, nil
}

func (s *quicSession) AcceptStream(ctx context.Context) (Stream, error) {
	st, err := s.conn.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return &quicStream{Stream: st, conn: s.conn, heard: &s.heard}, nil
}

func (s *quicSession) Done() <-chan struct{} { return s.conn.Context().Done() }
func (s *quicSession) Close() error {
	err := s.conn.CloseWithError(quicNoError, "")
	if s.ended != nil {
		s.ended()
	}
	return err
}

// quicStream adapts a native QUIC stream: CloseWrite sends FIN; Close after
// it only stops reading, so data in flight still arrives; Close without it
// resets the stream both ways, as an aborted relay wants.
type quicStream struct {
	*quic.Stream
	conn  *quic.Conn
	heard *atomic.Int64 // its session's

	mu          sync.Mutex
	wroteClosed bool
}

func (s *quicStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	if n > 0 {
		s.heard.Store(time.Now().UnixNano())
	}
	if err != nil && err != io.EOF {
		err = quicResetError(err)
	}
	return n, err
}

func (s *quicStream) Write(p []byte) (int, error) {
	n, err := s.Stream.Write(p)
	if err != nil {
		err = quicResetError(err)
	}
	return n, err
}

// quicResetError marks the errors of a reset stream, and those of its
// connection's end, as ErrStreamReset, and the peer's aborts (its Close
// resets with quicStreamReset) as ErrPeerAborted.
func quicResetError(err error) error {
	var se *quic.StreamError
	var ae *quic.ApplicationError
	if errors.As(err, &se) {
		return &streamReset{err: err, aborted: se.Remote && se.ErrorCode == quicStreamReset}
	}
	if errors.As(err, &ae) {
		return &streamReset{err: err}
	}
	return err
}

func (s *quicStream) CloseWrite() error {
	s.mu.Lock()
	s.wroteClosed = true
	s.mu.Unlock()
	return s.Stream.Close()
}

func (s *quicStream) Close() error {
	s.mu.Lock()
	wroteClosed := s.wroteClosed
	s.wroteClosed = true
	s.mu.Unlock()
	s.Stream.CancelRead(quicStreamReset)
	if !wroteClosed {
		s.Stream.CancelWrite(quicStreamReset)
	}
	return nil
}

func (s *quicStream) LocalAddr() net.Addr  { return s.conn.LocalAddr() }
func (s *quicStream) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }
