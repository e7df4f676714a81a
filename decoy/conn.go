package decoy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Listener wraps every connection ln accepts so that what net/http writes
// on it reads as nginx's (see Conn). Put it under any TLS listener: it
// then sees net/http's plaintext answer to HTTP on a TLS port, and
// nothing else of the TLS connection.
func Listener(ln net.Listener) net.Listener { return listener{ln} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Conn(c), nil
}

// Conn wraps c, a connection net/http serves a decoy on. net/http answers
// some requests before a handler runs, with fixed texts written straight
// to the connection in one write: a malformed request ("400 Bad Request"
// in plain text), headers over MaxHeaderBytes (431), a transfer coding it
// does not know (501), an HTTP version it does not speak (505), HTTP on a
// TLS port ("Client sent an HTTP request to an HTTPS server."). Conn
// replaces each with nginx's answer to the same request. It also writes the
// head of every answer that carries nginx's Server header (shape's) as
// nginx orders it, with nginx's reason phrase, which net/http does not
// let a handler choose; and, as nginx, it skips empty lines before the
// first request. It keeps a few words of state per connection. A c with a
// TLS state (a connection whose TLS was terminated before) keeps it, for
// net/http to read.
func Conn(c net.Conn) net.Conn {
	if sc, ok := c.(connectionStater); ok {
		return stateConn{newConn(c), sc}
	}
	return newConn(c)
}

func newConn(c net.Conn) *conn { return &conn{Conn: c, start: true, inLine: true} }

type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

type stateConn struct {
	*conn
	connectionStater
}

type conn struct {
	net.Conn
	// Read side, touched by net/http's reading goroutine only.
	start   bool // no byte but CR or LF read yet
	inLine  bool // counting the first request line
	lineLen int
	// lineLong is set by the reader and read by the writer: the first
	// request line was longer than nginx takes. Only the first request
	// of a connection is measured; a prober sends one.
	lineLong atomic.Bool
}

// maxLine is nginx's longest request or header line, without its CRLF.
const maxLine = largeBuffer - 2

func (c *conn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if c.start && n > 0 {
			skip := 0
			for skip < n && (p[skip] == '\r' || p[skip] == '\n') {
				skip++
			}
			if skip > 0 {
				n = copy(p, p[skip:n])
			}
			if n > 0 {
				c.start = false
			}
			if n == 0 && err == nil {
				continue
			}
		}
		if c.inLine && n > 0 {
			if i := bytes.IndexByte(p[:n], '\n'); i >= 0 {
				c.lineLen += i
				c.inLine = false
			} else {
				c.lineLen += n
			}
			if c.lineLen > maxLine {
				c.lineLong.Store(true)
				c.inLine = false
			}
		}
		return n, err
	}
}

func (c *conn) Write(p []byte) (int, error) {
	if !bytes.HasPrefix(p, []byte("HTTP/1.")) {
		return c.Conn.Write(p)
	}
	if out := c.replaceCanned(p); out != nil {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	head, ok := nginxHead(p)
	if !ok {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(head); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite lets net/http's lingering close after an error answer reach
// the connection underneath.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// NetConn is the connection under c.
func (c *conn) NetConn() net.Conn { return c.Conn }

// net/http's fixed answers (net/http/server.go): a status line, these
// headers, and a short text.
const (
	cannedHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	cannedTLS     = "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)

// replaceCanned returns nginx's answer in place of p if p is one of
// net/http's fixed answers, else nil.
func (c *conn) replaceCanned(p []byte) []byte {
	if string(p) == cannedTLS {
		return errorAnswer(http.StatusBadRequest, detailPlainToHTTPS, time.Now())
	}
	// "HTTP/1.1 NNN Text" and then the fixed headers at once: net/http's
	// own answers put nothing before Content-Type, not even a Date.
	eol := bytes.Index(p, []byte("\r\n"))
	if len(p) < 12 || eol < 12 || !bytes.HasPrefix(p[eol:], []byte(cannedHeaders)) {
		return nil
	}
	code, err := strconv.Atoi(string(p[9:12]))
	if err != nil {
		return nil
	}
	switch {
	case code == http.StatusRequestHeaderFieldsTooLarge && c.lineLong.Load():
		return errorAnswer(http.StatusRequestURITooLong, "", time.Now())
	case code == http.StatusRequestHeaderFieldsTooLarge:
		return errorAnswer(http.StatusBadRequest, detailHeaderTooLarge, time.Now())
	case code >= 400:
		return errorAnswer(code, "", time.Now())
	}
	return nil
}

// errorAnswer is a whole answer as nginx writes it when it gives up on a
// request while reading it.
func errorAnswer(code int, detail string, now time.Time) []byte {
	body := errorPage(code, detail)
	return []byte("HTTP/1.1 " + strconv.Itoa(code) + " " + reason(code) +
		"\r\nServer: nginx\r\nDate: " + now.UTC().Format(http.TimeFormat) +
		"\r\nContent-Type: text/html\r\nContent-Length: " + strconv.Itoa(len(body)) +
		"\r\nConnection: close\r\n\r\n" + string(body))
}
