package decoy

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// SplitTLS serves TLS on ln for a decoy that speaks HTTP/2 as well as
// HTTP/1.1, as an ordinary HTTPS site does. net/http serves HTTP/2 only on
// a *tls.Conn, and on a *tls.Conn its HTTP/1.1 answers are out of Conn's
// reach; so SplitTLS completes each handshake itself (within HeaderTimeout)
// and passes the connection on by what it negotiated: a connection that
// chose h2 to http2, as the *tls.Conn, for an http.Server with HTTP/2 on;
// any other to http1, shaped as TLSListener's connections are, with its TLS
// state for net/http to read. HTTP sent to this port gets nginx's answer
// to it. Closing either listener closes ln, both, and every connection
// still in its handshake.
func SplitTLS(ln net.Listener, conf *tls.Config) (http1, http2 net.Listener) {
	s := &splitTLS{ln: ln, conf: conf, done: make(chan struct{}), pending: map[net.Conn]struct{}{}}
	s.h1 = &handoff{s: s, c: make(chan net.Conn)}
	s.h2 = &handoff{s: s, c: make(chan net.Conn)}
	s.wg.Add(1)
	go s.accept()
	return s.h1, s.h2
}

type splitTLS struct {
	ln     net.Listener
	conf   *tls.Config
	h1, h2 *handoff
	done   chan struct{} // closed by close
	once   sync.Once
	err    error // of closing ln
	wg     sync.WaitGroup

	mu      sync.Mutex
	pending map[net.Conn]struct{} // connections in their handshake
}

func (s *splitTLS) accept() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		raw, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				s.close()
				return
			}
			// Out of file descriptors, say: wait as net/http's Serve does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
			case <-s.done:
				return
			}
			continue
		}
		backoff = 0
		s.mu.Lock()
		select {
		case <-s.done:
			s.mu.Unlock()
			raw.Close()
			return
		default:
		}
		s.pending[raw] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handshake(raw)
	}
}

// handshake completes raw's TLS handshake and hands the connection over.
func (s *splitTLS) handshake(raw net.Conn) {
	defer s.wg.Done()
	tc := tls.Server(raw, s.conf)
	c := &tlsConn{conn: newConn(tc), tls: tc, raw: raw}
	c.once.Do(c.handshake)
	s.mu.Lock()
	delete(s.pending, raw)
	s.mu.Unlock()
	if !tc.ConnectionState().HandshakeComplete {
		raw.Close()
		return
	}
	to, out := s.h1, net.Conn(c)
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		to, out = s.h2, tc
	}
	select {
	case to.c <- out:
	case <-s.done:
		raw.Close()
	}
}

func (s *splitTLS) close() error {
	s.once.Do(func() {
		s.mu.Lock()
		close(s.done)
		for c := range s.pending {
			c.Close()
		}
		s.mu.Unlock()
		s.err = s.ln.Close()
	})
	return s.err
}

// handoff is one of SplitTLS's two listeners.
type handoff struct {
	s *splitTLS
	c chan net.Conn
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.c:
		return c, nil
	case <-h.s.done:
		return nil, net.ErrClosed
	}
}

// Close closes both listeners, and waits for the connections in their
// handshake to end.
func (h *handoff) Close() error {
	err := h.s.close()
	h.s.wg.Wait()
	return err
}

func (h *handoff) Addr() net.Addr { return h.s.ln.Addr() }
