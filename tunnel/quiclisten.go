package tunnel

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"

	"ferry/decoy"
)

// QUICListener accepts QUIC sessions: an origin's from edges, or in reverse
// mode an edge's from origins. To everyone else it is an HTTP/3 server
// that serves the decoy (h3.go).
type QUICListener struct {
	tr       *quic.Transport
	ln       *quic.EarlyListener
	end      End
	key      []byte
	h3       *http3.Server // gives each connection its HTTP/3 side
	refusals *refusals

	queue
	wg sync.WaitGroup // the accept loop, and each connection until it is a session or ends

	mu        sync.Mutex
	live      int                         // connections accepted and not yet ended
	strangers map[*quic.Conn]quicStranger // connections that are not sessions (yet): Close closes them
	seq       uint64                      // orders strangers, oldest first
	maxConns  int                         // caps len(strangers)
	perIP     int                         // caps strangers per ipKey
	closed    bool                        // Close was called: the socket goes with the last session
	once      sync.Once
	err       error // of closing the socket

	// AuthFailures counts connections whose hello frame had a wrong proof.
	AuthFailures atomic.Int64
	// DecoyHits counts the HTTP/3 requests the decoy answered.
	DecoyHits atomic.Int64
}

// listenQUIC listens on pc, a UDP socket, with o.Certificate and o.Decoy;
// Listen fills in o's defaults. The listener's Close closes pc.
func listenQUIC(pc net.PacketConn, o ListenOptions) (*QUICListener, error) {
	tr := &quic.Transport{Conn: pc}
	ln, err := tr.ListenEarly(h3TLSConfig(*o.Certificate), quicListenConfig(o.End))
	if err != nil {
		return nil, fmt.Errorf("quic listen %s: %w", pc.LocalAddr(), err)
	}
	l := &QUICListener{
		tr: tr, ln: ln, end: o.End, key: helloKey(o.End.Secret), queue: newQueue(), strangers: map[*quic.Conn]quicStranger{},
		maxConns: cmp.Or(max(o.MaxConns, 0), DefaultMaxConns), perIP: cmp.Or(max(o.MaxIdlePerIP, 0), DefaultMaxIdlePerIP),
		refusals: &refusals{log: o.End.Log, transport: "quic", clientIPs: o.End.LogClientIPs},
	}
	// nginx's headers, as on the ws listeners (decoy.NewServer).
	site := decoy.Shape(o.Decoy)
	// quic-go's HTTP/3 server in all but its accept loops (h3.go). Its
	// Logger stays nil: it would log requests' URIs.
	l.h3 = &http3.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.DecoyHits.Add(1)
		site.ServeHTTP(w, r)
	})}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// h3TLSConfig is the TLS configuration of an http3.Server with crt:
// ALPN h3 only, so that a client offering anything else fails as it fails
// there (alert no_application_protocol), and session tickets that carry
// what http3.Server adds to them (its SETTINGS, which it checks before it
// takes 0-RTT), so that they are as long as its tickets.
func h3TLSConfig(crt tls.Certificate) *tls.Config {
	conf := http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{crt}, MinVersion: tls.VersionTLS13})
	extra := h3TicketExtra()
	conf.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		ss.Extra = append(ss.Extra, bytes.Clone(extra))
		return conf.EncryptTicket(cs, ss)
	}
	return conf
}

// h3TicketExtra is what http3.Server's configureTLSConfig adds to a
// session ticket (http3/settings_0rtt.go): a prefix and its SETTINGS frame
// with its defaults, the largest header section (http.DefaultMaxHeaderBytes)
// and extended CONNECT (RFC 9114 §7.2.4.1, RFC 9220).
func h3TicketExtra() []byte {
	var s []byte
	s = quicvarint.Append(s, 0x6) // SETTINGS_MAX_FIELD_SECTION_SIZE
	s = quicvarint.Append(s, http.DefaultMaxHeaderBytes)
	s = quicvarint.Append(s, 0x8) // SETTINGS_ENABLE_CONNECT_PROTOCOL
	s = quicvarint.Append(s, 1)
	b := []byte("quic-go h3 settings v1")
	b = quicvarint.Append(b, 0x4) // SETTINGS
	b = quicvarint.Append(b, uint64(len(s)))
	return append(b, s...)
}

func (l *QUICListener) Addr() net.Addr { return l.ln.Addr() }

// Close stops accepting, closes the connections that are not sessions (an
// HTTP/3 server's Close closes its connections), and returns. The sessions
// it accepted share its socket and belong to whoever accepted them: the
// socket is closed when the last of them closes, within that session's
// Close, so that once their owner has closed them all the port is free
// again.
func (l *QUICListener) Close() error {
	l.cancel()
	err := l.ln.Close()
	l.mu.Lock()
	l.closed = true
	for c := range l.strangers {
		c.CloseWithError(h3NoError, "")
	}
	l.mu.Unlock()
	l.wg.Wait()
	l.refusals.close()
	l.mu.Lock()
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
		if l.closed {
			l.mu.Unlock()
			conn.CloseWithError(h3NoError, "")
			return
		}
		l.live++
		l.admitLocked(conn)
		l.mu.Unlock()
		// Once, whether the session's Close or the connection's end
		// (its peer's close, an idle timeout) comes first.
		ended := sync.OnceFunc(l.ended)
		context.AfterFunc(conn.Context(), ended)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.serve(conn, ended)
		}()
	}
}

// quicStranger is what the listener keeps of a connection that is not a
// session (yet).
type quicStranger struct {
	seq uint64
	key netip.Addr
}

// admitLocked counts conn among the strangers, and makes room for it: a
// stranger is held until its idle timeout (75 s, as an HTTP/3 server's)
// however little it sent, so without caps one address could make the
// listener hold connections without end. Over MaxConns, or over
// MaxIdlePerIP from one IPv4 address or IPv6 /64, the oldest stranger
// (of that address) is closed, as a server short of room does with H3_NO_ERROR.
// Sessions, once proven, are not counted.
func (l *QUICListener) admitLocked(conn *quic.Conn) {
	key := ipKey(conn.RemoteAddr())
	l.seq++
	l.strangers[conn] = quicStranger{seq: l.seq, key: key}
	same := 0
	for _, s := range l.strangers {
		if s.key == key {
			same++
		}
	}
	if same > l.perIP {
		l.closeOldestLocked(func(s quicStranger) bool { return s.key == key })
	}
	if len(l.strangers) > l.maxConns {
		l.closeOldestLocked(func(quicStranger) bool { return true })
	}
}

// closeOldestLocked closes the oldest stranger that match picks, and takes
// it out.
func (l *QUICListener) closeOldestLocked(match func(quicStranger) bool) {
	var oldest *quic.Conn
	var seq uint64
	for c, s := range l.strangers {
		if match(s) && (oldest == nil || s.seq < seq) {
			oldest, seq = c, s.seq
		}
	}
	if oldest != nil {
		delete(l.strangers, oldest)
		oldest.CloseWithError(h3NoError, "")
	}
}

// known takes conn out of the strangers, once it has proved the secret; it
// reports false, and closes conn, when the listener is closed already.
func (l *QUICListener) known(conn *quic.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.strangers, conn)
	if l.closed {
		conn.CloseWithError(h3NoError, "")
		return false
	}
	return true
}

// forget takes conn out of the strangers once its service has ended.
func (l *QUICListener) forget(conn *quic.Conn) {
	l.mu.Lock()
	delete(l.strangers, conn)
	l.mu.Unlock()
}
