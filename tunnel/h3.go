package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"ferry/internal/redact"
)

// How a QUIC listener tells an edge from everyone else, and why no one
// else can tell it from an HTTP/3 server.
//
// Every connection is an HTTP/3 connection first. The listener offers only
// the ALPN h3, with quic-go's HTTP/3 server's TLS and QUIC configuration
// (quiclisten.go, quic.go), so a handshake offering anything else fails as
// it fails there, with the TLS alert no_application_protocol (QUIC error
// 0x178). At once, as an HTTP/3 server does, the connection gets its
// HTTP/3 side (http3.RawServerConn), which opens the control stream and
// sends SETTINGS, and its unidirectional streams are handed to it.
//
// The connection's first bidirectional stream is looked at without being
// consumed (quic.Stream.Peek): if it begins with the hello frame
// (h3hello.go), an HTTP/3 frame of a type reserved for greasing whose
// payload is the edge's hello, and the hello's proof checks out against
// this connection's TLS exporter, the connection is an edge's (or, in
// reverse mode, an origin's): the frame is consumed, the hellos go on as
// over any transport, and the connection is a tunnel session from then on,
// no longer HTTP/3. Anything else, a wrong proof included, leaves the
// stream untouched and goes to HTTP/3 with every later stream: the
// stranger gets exactly quic-go's HTTP/3 server (an unknown frame type is
// skipped, a first frame that is not HEADERS closes the connection with
// H3_FRAME_UNEXPECTED, and so on), and the decoy as its handler.
//
// Nothing of this shows: the hello travels encrypted in 1-RTT packets, in
// a frame type that HTTP/3 clients do not send first and servers skip; it
// cannot be replayed, since its proof is bound to the TLS exporter of the
// very connection it came on (a replay on another connection fails, and
// falls through to HTTP/3 unchanged); and the listener answers nothing
// until the proof is checked. An edge never opens a second stream before
// the listener's answer, so a second stream opened while the first one is
// still being looked at makes the connection HTTP/3's at once, and a
// stranger's requests wait for nothing. A TLS client certificate would
// have done as well, but the server would then send a CertificateRequest
// to everyone, which ordinary HTTP/3 servers do not.
//
// What a stranger can make the listener hold is an HTTP/3 server's: its
// requests are served h3MaxRequests at a time (more wait unaccepted, as
// over a server's stream limit), headers up to http.DefaultMaxHeaderBytes
// (http3.Server's default), and a connection with no request in progress
// is closed after h3IdleTimeout, or QUIC's own idle timeout (30 s) when
// the peer sends nothing at all.

const (
	// h3MaxRequests is how many requests of one connection are served at
	// once: quic-go's default stream limit, as most HTTP/3 servers'.
	h3MaxRequests = 100
	// h3IdleTimeout closes a stranger's connection with no request in
	// progress, as http3.Server's IdleTimeout does; nginx keeps an idle
	// connection 75 s.
	h3IdleTimeout = 75 * time.Second
	// h3NoError is H3_NO_ERROR, what an HTTP/3 server closes with.
	h3NoError = quic.ApplicationErrorCode(http3.ErrCodeNoError)
)

// h3Conn is one accepted connection while it is HTTP/3's, or not yet known.
type h3Conn struct {
	l     *QUICListener
	conn  *quic.Conn
	hc    *http3.RawServerConn
	slots chan struct{} // one per request in progress, up to h3MaxRequests
	wg    sync.WaitGroup

	mu     sync.Mutex
	active int // requests in progress
	idle   *time.Timer
	tunnel bool // the connection proved the secret: no more idle timer
}

// serve serves conn until it ends or turns out to be a tunnel, which it
// then delivers; ended counts it out of the listener.
func (l *QUICListener) serve(conn *quic.Conn, ended func()) {
	c := &h3Conn{l: l, conn: conn, slots: make(chan struct{}, h3MaxRequests)}
	defer c.wg.Wait()
	defer l.forget(conn)
	hc, err := l.h3.NewRawServerConn(conn)
	if err != nil { // the connection has ended already
		conn.CloseWithError(h3NoError, "")
		return
	}
	c.hc = hc
	c.idle = time.AfterFunc(h3IdleTimeout, func() { conn.CloseWithError(h3NoError, "idle timeout") })
	uniCtx, stopUni := context.WithCancel(conn.Context())
	uniDone := make(chan struct{})
	go func() {
		defer close(uniDone)
		for {
			st, err := conn.AcceptUniStream(uniCtx)
			if err != nil {
				return
			}
			// Not waited for, as in http3.Server: each ends with the
			// connection, which a session's owner closes.
			go hc.HandleUnidirectionalStream(st)
		}
	}()
	defer func() { stopUni(); <-uniDone }()

	first, ok := c.accept(conn.Context())
	if !ok {
		return
	}
	hello, n, next := c.recognise(first)
	if hello != nil {
		stopUni()
		<-uniDone
		c.mu.Lock()
		c.tunnel = true
		c.idle.Stop()
		c.mu.Unlock()
		<-c.slots
		if l.known(conn) {
			l.tunnel(conn, first, n, ended)
		}
		return
	}
	c.request(first)
	if next != nil {
		c.request(next)
	}
	for {
		st, ok := c.accept(conn.Context())
		if !ok {
			return
		}
		c.request(st)
	}
}

// accept takes a request slot and accepts a stream into it.
func (c *h3Conn) accept(ctx context.Context) (*quic.Stream, bool) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false
	}
	st, err := c.conn.AcceptStream(ctx)
	if err != nil {
		<-c.slots
		return nil, false
	}
	c.mu.Lock()
	c.active++
	c.idle.Stop()
	c.mu.Unlock()
	return st, true
}

// request serves st, which holds a slot, over HTTP/3.
func (c *h3Conn) request(st *quic.Stream) {
	c.wg.Go(func() {
		c.hc.HandleRequestStream(st)
		c.mu.Lock()
		c.active--
		if c.active == 0 && !c.tunnel {
			c.idle.Reset(h3IdleTimeout)
		}
		c.mu.Unlock()
		<-c.slots
	})
}

// recognise looks at first for a hello frame whose proof checks out. It
// returns the hello and the frame's length when there is one; otherwise the
// stream is HTTP/3's, and so is next, a second stream, when one came
// before recognise could tell.
func (c *h3Conn) recognise(first *quic.Stream) (hello []byte, n int, next *quic.Stream) {
	type verdict struct {
		hello []byte
		n     int
	}
	var decided atomic.Bool
	peeked := make(chan verdict, 1)
	c.wg.Go(func() {
		h, n := c.peekHello(first, &decided)
		peeked <- verdict{h, n}
	})
	ctx, stop := context.WithCancel(c.conn.Context())
	defer stop()
	second := make(chan *quic.Stream, 1)
	go func() {
		st, _ := c.accept(ctx)
		second <- st
	}()
	select {
	case v := <-peeked:
		stop()
		if st := <-second; st != nil {
			return nil, 0, st // the edge waits for the answer before any other stream
		}
		return v.hello, v.n, nil
	case st := <-second:
		// HTTP/3's, and a Peek still waiting holds up its reads only until
		// the bytes HTTP/3 waits for too come in.
		decided.Store(true)
		return nil, 0, st
	}
}

// peekHello peeks at st's first bytes for as long as they may be a hello
// frame, and until decided. It returns the hello when its proof checks
// out (or that of a peer of the same role, which helloSecond then tells),
// and the frame's length.
func (c *h3Conn) peekHello(st *quic.Stream, decided *atomic.Bool) ([]byte, int) {
	var b [2*8 + helloLen]byte // the longest varints
	need := 1
	var hello []byte
	var n int
	for hello == nil {
		if need == 0 || decided.Load() {
			return nil, 0
		}
		if _, err := st.Peek(b[:need]); err != nil {
			return nil, 0 // the stream or the connection ended: HTTP/3 will tell
		}
		hello, n, need = parseHelloFrame(b[:need])
	}
	// 0-RTT data may come before the handshake ends, and with it the
	// exporter the proof is bound to.
	select {
	case <-c.conn.HandshakeComplete():
	case <-c.conn.Context().Done():
		return nil, 0
	}
	if err := c.l.checkHelloFrame(c.conn, hello); err != nil {
		c.l.AuthFailures.Add(1)
		c.l.refusals.refused("quic tunnel refused", err, redact.AddrOf(c.conn.RemoteAddr()))
		return nil, 0
	}
	return hello, n
}

// checkHelloFrame checks a hello peeked on conn, as helloSecond will.
func (l *QUICListener) checkHelloFrame(conn *quic.Conn, hello []byte) error {
	if hello[0] != helloVersion {
		return fmt.Errorf("%w: hello version %d", ErrBadHello, hello[0])
	}
	if hello[1]&FlagBound == 0 {
		return fmt.Errorf("%w: an unbound hello over QUIC", ErrBadHello)
	}
	cs := conn.ConnectionState().TLS
	ekm, err := exporter(&cs)
	if err != nil {
		return err
	}
	if err := checkHello(l.key, l.end.flags(), hello[1], hello[2:], ekm); errors.Is(err, ErrBadHello) {
		return err
	}
	return nil
}

// tunnel consumes the hello frame's n bytes of st, runs the listener's side
// of the hellos, and delivers the session.
func (l *QUICListener) tunnel(conn *quic.Conn, st *quic.Stream, n int, ended func()) {
	ctx, cancel := context.WithTimeout(l.ctx, HandshakeTimeout)
	defer cancel()
	s, err := l.hellos(ctx, conn, st, n, ended)
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
}

func (l *QUICListener) hellos(ctx context.Context, conn *quic.Conn, st *quic.Stream, n int, ended func()) (Session, error) {
	cs := conn.ConnectionState().TLS
	ekm, err := exporter(&cs)
	if err != nil {
		return nil, err
	}
	dl, _ := ctx.Deadline()
	st.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Now()) })
	defer stop()
	// The frame's header; helloSecond reads the hello itself.
	if _, err := io.ReadFull(st, make([]byte, n-helloLen)); err != nil {
		return nil, fmt.Errorf("read hello: %w", err)
	}
	pflags, err := helloSecond(st, l.key, ekm, nil, l.end.flags())
	if errors.Is(err, ErrSameRole) {
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
	return newQUICSession(conn, st, l.end, pflags, ended), nil
}
