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

	"github.com/ferryproxy/ferry/internal/redact"
)

// ALPN is the application protocol of ferry's QUIC tunnels; QUIC requires one.
const ALPN = "ferry/1"

// MaxStreamsPerSession is how many streams an origin lets one QUIC session
// have open at once: at least an edge's FERRY_EDGE_MAX_CONNS (27,500 by
// default). quic-go's default is 100.
const MaxStreamsPerSession = 32768

// QUICStreamWindow is the largest receive window of a QUIC stream; one
// stream's throughput is capped at window/RTT (168 MB/s at 100 ms).
const QUICStreamWindow = 16 << 20

// Generic QUIC error codes: a refused connection learns nothing.
const (
	quicNoError     quic.ApplicationErrorCode = 0
	quicStreamReset quic.StreamErrorCode      = 0
)

// quicConfig is the configuration of end's connections; dialer says whether
// end dials them.
func quicConfig(end End, dialer bool) *quic.Config {
	c := &quic.Config{
		HandshakeIdleTimeout: 5 * time.Second,
		// A path that stops carrying packets (UDP blocked mid-session, as
		// censors do) is given up after 6 s, so that the edge moves new
		// clients to its next origin quickly; keepalives every 2 s (a few
		// bytes) keep a healthy idle session from looking dead, even with a
		// lost packet or two.
		MaxIdleTimeout:  6 * time.Second,
		KeepAlivePeriod: 2 * time.Second,
		// Windows for long fat links; quic-go tunes each stream's window
		// up to the maximum as the stream needs it.
		MaxStreamReceiveWindow:     QUICStreamWindow,
		MaxConnectionReceiveWindow: 4 * QUICStreamWindow,
		MaxIncomingUniStreams:      -1,
	}
	// The dialer opens the control stream, and the edge every other one.
	switch {
	case end.Origin && dialer:
		c.MaxIncomingStreams = MaxStreamsPerSession
	case end.Origin:
		c.MaxIncomingStreams = MaxStreamsPerSession + 1
	case dialer:
		c.MaxIncomingStreams = -1
	default:
		c.MaxIncomingStreams = 1
	}
	return c
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
		// Always bound: the hellos prove the secret over this session.
		tls: &tls.Config{ServerName: sni, NextProtos: []string{ALPN}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13},
		end: end,
	}
}

// Dial connects and returns a session; ctx bounds only the handshake.
func (d *QUICDialer) Dial(ctx context.Context) (Session, error) {
	ctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
	defer cancel()
	conn, err := quic.DialAddr(ctx, d.addr, d.tls, quicConfig(d.end, true))
	if err != nil {
		return nil, fmt.Errorf("quic dial %s: %w", d.addr, err)
	}
	s, err := quicHandshake(ctx, conn, d.end, true, nil)
	if err != nil {
		conn.CloseWithError(quicNoError, "")
		return nil, fmt.Errorf("quic %s: %w", d.addr, err)
	}
	return s, nil
}

// quicHandshake runs the hellos on the connection's first stream, which the
// dialer opens, and keeps that stream as the session's control stream. On
// the listener, until the hellos check out, the connection gets no other
// stream accepted.
// quicHandshake runs the hellos on conn; ended, when set, runs once when the
// session closes.
func quicHandshake(ctx context.Context, conn *quic.Conn, end End, dialer bool, ended func()) (Session, error) {
	cs := conn.ConnectionState().TLS
	ekm, err := exporter(&cs)
	if err != nil {
		return nil, err
	}
	var st *quic.Stream
	if dialer {
		st, err = conn.OpenStreamSync(ctx)
	} else {
		st, err = conn.AcceptStream(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("no hello: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		st.SetDeadline(dl)
	}
	key := helloKey(end.Secret)
	var pflags byte
	if dialer {
		pflags, err = helloFirst(st, key, ekm, nil, end.flags())
	} else {
		pflags, err = helloSecond(st, key, ekm, nil, end.flags())
	}
	if errors.Is(err, ErrSameRole) && !dialer {
		// Let the answer reach the dialer, which learns why and closes.
		st.Close()
		select {
		case <-conn.Context().Done():
		case <-ctx.Done():
		}
		return nil, err
	}
	if err != nil {
		st.CancelRead(quicStreamReset)
		st.CancelWrite(quicStreamReset)
		return nil, err
	}
	st.SetDeadline(time.Time{})
	return newSession(&quicSession{conn: conn, ended: ended}, &quicStream{Stream: st, conn: conn}, end, pflags), nil
}

// QUICListener accepts QUIC sessions: an origin's from edges, or in reverse
// mode an edge's from origins.
type QUICListener struct {
	tr       *quic.Transport
	ln       *quic.Listener
	end      End
	refusals *refusals

	queue
	wg sync.WaitGroup

	mu     sync.Mutex
	live   int  // connections accepted and not yet ended
	closed bool // Close was called: the socket goes with the last of them
	once   sync.Once
	err    error // of closing the socket

	// AuthFailures counts connections refused for their hellos.
	AuthFailures atomic.Int64
}

// listenQUIC listens on pc, a UDP socket, with o.Certificate; Listen fills
// in o's defaults. The listener's Close closes pc.
func listenQUIC(pc net.PacketConn, o ListenOptions) (*QUICListener, error) {
	conf := &tls.Config{Certificates: []tls.Certificate{*o.Certificate}, NextProtos: []string{ALPN}, MinVersion: tls.VersionTLS13}
	tr := &quic.Transport{Conn: pc}
	ln, err := tr.Listen(conf, quicConfig(o.End, false))
	if err != nil {
		return nil, fmt.Errorf("quic listen %s: %w", pc.LocalAddr(), err)
	}
	l := &QUICListener{tr: tr, ln: ln, end: o.End, queue: newQueue(),
		refusals: &refusals{log: o.End.Log, transport: "quic", clientIPs: o.End.LogClientIPs}}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

func (l *QUICListener) Addr() net.Addr { return l.ln.Addr() }

// Close stops accepting and returns. The sessions it accepted share its
// socket and belong to whoever accepted them: the socket is closed when
// the last of them closes, within that session's Close, so that once their
// owner has closed them all the port is free again.
func (l *QUICListener) Close() error {
	l.cancel()
	err := l.ln.Close()
	l.wg.Wait()
	l.refusals.close()
	l.mu.Lock()
	l.closed = true
	idle := l.live == 0
	l.mu.Unlock()
	if idle {
		err = errors.Join(err, l.closeSocket())
	}
	return err
}

// ended counts out a connection the listener accepted, and closes the
// socket after the last one once the listener is closed.
func (l *QUICListener) ended() {
	l.mu.Lock()
	l.live--
	last := l.closed && l.live == 0
	l.mu.Unlock()
	if last {
		l.closeSocket()
	}
}

func (l *QUICListener) closeSocket() error {
	l.once.Do(func() {
		// The transport does not close a socket it was given.
		l.err = errors.Join(l.tr.Close(), l.tr.Conn.Close())
	})
	return l.err
}

func (l *QUICListener) acceptLoop() {
	defer l.wg.Done()
	for {
		conn, err := l.ln.Accept(l.ctx)
		if err != nil {
			return
		}
		l.mu.Lock()
		l.live++
		l.mu.Unlock()
		// Once, whether the session's Close or the connection's end
		// (its peer's close, an idle timeout) comes first.
		ended := sync.OnceFunc(l.ended)
		context.AfterFunc(conn.Context(), ended)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			ctx, cancel := context.WithTimeout(l.ctx, HandshakeTimeout)
			s, err := quicHandshake(ctx, conn, l.end, false, ended)
			cancel()
			if err != nil {
				if authFailure(err) {
					l.AuthFailures.Add(1)
				}
				l.refusals.refused("quic tunnel refused", err, redact.AddrOf(conn.RemoteAddr()))
				conn.CloseWithError(quicNoError, "")
				ended()
				return
			}
			l.deliver(s)
		}()
	}
}

type quicSession struct {
	conn  *quic.Conn
	ended func() // an accepted session's: counts it out of its listener
}

// Heard is zero: quic-go closes a connection its peer has not answered
// within MaxIdleTimeout itself.
func (s *quicSession) Heard() time.Time { return time.Time{} }

func (s *quicSession) OpenStream(ctx context.Context) (Stream, error) {
	st, err := s.conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return &quicStream{Stream: st, conn: s.conn}, nil
}

func (s *quicSession) AcceptStream(ctx context.Context) (Stream, error) {
	st, err := s.conn.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return &quicStream{Stream: st, conn: s.conn}, nil
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
	conn *quic.Conn

	mu          sync.Mutex
	wroteClosed bool
}

func (s *quicStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
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
