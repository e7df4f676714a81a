package tunnel

import (
	"net"
	"sync"
)

// corkConn holds the writes made while corked and sends them with one
// write at uncork. coder/websocket writes a masked frame (every frame from
// an edge that dialled) through a 4 KiB buffer, a write per 4 KiB, and an
// unmasked one in two writes; frameConn corks the connection under the
// WebSocket around each yamux frame, so that a frame costs one write
// system call. Writes made while not corked (the WebSocket's own control
// frames) go straight through, in order.
type corkConn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	buf    []byte
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork sends what was held.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

// corkOf finds the corkConn under c, through TLS: crypto/tls's, or any
// TLSConn (tlsclient.go).
func corkOf(c net.Conn) *corkConn { return under[*corkConn](c) }

// under finds the connection of type T in c or under it, through the
// wrappers that show what they wrap by NetConn (*tls.Conn, a TLSConn, the
// decoy's connections), and the listener's own: nil if there is none.
func under[T net.Conn](c net.Conn) T {
	for c != nil {
		if t, ok := c.(T); ok {
			return t
		}
		switch w := c.(type) {
		case *corkConn:
			c = w.Conn
		case interface{ NetConn() net.Conn }:
			c = w.NetConn()
		default:
			c = nil
		}
	}
	var none T
	return none
}

// corkListener makes every accepted connection a corkConn.
type corkListener struct{ net.Listener }

func (l corkListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &corkConn{Conn: c}, nil
}

// connKey carries, in a request's context, the listener's connection under
// it, to find its cork.
type connKey struct{}
