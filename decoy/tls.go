package decoy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// TLSListener serves TLS on ln for a decoy, with what net/http writes
// inside TLS shaped as Conn shapes it on plain connections. With a
// *tls.Conn net/http would write its fixed answers into the TLS stream,
// out of Conn's reach; so the connections it gets are not *tls.Conn but
// carry one, and net/http reads their TLS state from ConnectionState,
// which completes the handshake (within HeaderTimeout, as nginx bounds
// handshakes with client_header_timeout). HTTP sent to this port gets
// nginx's answer to it. Only HTTP/1.1 is spoken: net/http gives HTTP/2 only
// to a *tls.Conn.
func TLSListener(ln net.Listener, conf *tls.Config) net.Listener {
	conf = conf.Clone()
	conf.NextProtos = slices.DeleteFunc(conf.NextProtos, func(p string) bool { return p == "h2" })
	return &tlsListener{Listener: ln, conf: conf}
}

type tlsListener struct {
	net.Listener
	conf *tls.Config
}

func (l *tlsListener) Accept() (net.Conn, error) {
	raw, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := tls.Server(raw, l.conf)
	return &tlsConn{conn: newConn(tc), tls: tc, raw: raw}, nil
}

type tlsConn struct {
	*conn
	tls  *tls.Conn
	raw  net.Conn
	once sync.Once
}

// ConnectionState completes the handshake and returns its state. net/http
// calls it before it reads a request.
func (c *tlsConn) ConnectionState() tls.ConnectionState {
	c.once.Do(c.handshake)
	return c.tls.ConnectionState()
}

func (c *tlsConn) handshake() {
	c.raw.SetDeadline(time.Now().Add(HeaderTimeout))
	err := c.tls.Handshake()
	c.raw.SetDeadline(time.Time{})
	if re := (tls.RecordHeaderError{}); errors.As(err, &re) && re.Conn != nil {
		// Not TLS at all. nginx reads it as HTTP: a request gets its
		// "plain HTTP request was sent to HTTPS port" page, anything
		// else the plain 400.
		detail := ""
		if looksLikeHTTP(re.RecordHeader[:]) {
			detail = detailPlainToHTTPS
		}
		re.Conn.Write(errorAnswer(http.StatusBadRequest, detail, time.Now()))
		re.Conn.Close()
	}
}

// NetConn is the TLS connection, for those who look under a decoy's
// connection for its TLS state.
func (c *tlsConn) NetConn() net.Conn { return c.tls }

// looksLikeHTTP is net/http's test for a request where a TLS record
// should have been.
func looksLikeHTTP(h []byte) bool {
	for _, m := range []string{"GET /", "HEAD ", "POST ", "PUT /", "OPTIO"} {
		if bytes.HasPrefix(h, []byte(m)) {
			return true
		}
	}
	return false
}
