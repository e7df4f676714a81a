// Package origin accepts tunnels from edges, authenticates them, and relays
// each stream to the target its route names. To anyone without the secret
// it is an ordinary web server.
package origin

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryproxy/ferry/relay"
	"github.com/ferryproxy/ferry/tunnel"
	"github.com/ferryproxy/ferry/upstream"
)

// HeaderTimeout bounds the wait for a stream's header.
const HeaderTimeout = 10 * time.Second

// Listener is a tunnel listener and the HTTP path of its WebSocket. A wss
// listener is already wrapped in TLS.
type Listener struct {
	net.Listener
	Path string
}

// Server is an origin.
type Server struct {
	Listeners []Listener
	Verifier  *tunnel.Verifier
	Upstream  *upstream.Dialer
	// Decoy answers every request that is not an authenticated tunnel.
	Decoy http.Handler
	// Relay tunes every stream's relay; the zero value holds the defaults.
	Relay relay.Options
	Log   *slog.Logger

	sessions     atomic.Int64
	streams      atomic.Int64
	decoyHits    atomic.Int64
	authFailures atomic.Int64

	mu       sync.Mutex
	live     map[tunnel.Session]struct{}
	draining bool // no new sessions or streams
	// Live sessions and streams; Add only under mu while not draining, so
	// that no Add races the drain's Wait.
	sessionWG, streamWG sync.WaitGroup
}

// Stats are the origin's counters.
type Stats struct {
	Sessions, Streams       int64 // live now
	DecoyHits, AuthFailures int64 // since start
}

func (s *Server) Stats() Stats {
	return Stats{s.sessions.Load(), s.streams.Load(), s.decoyHits.Load(), s.authFailures.Load()}
}

// Run serves until ctx ends, then drains: it closes the listeners, lets live
// streams finish for up to grace, closes every session, and returns once
// every connection and goroutine it started has ended.
func (s *Server) Run(ctx context.Context, grace time.Duration) error {
	s.mu.Lock()
	s.live = map[tunnel.Session]struct{}{}
	s.mu.Unlock()

	// Streams live until the grace period ends, past ctx.
	streamCtx, cancelStreams := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelStreams()

	var wg sync.WaitGroup // the HTTP servers
	var servers []*http.Server
	for _, l := range s.Listeners {
		hs := &http.Server{
			Handler:           s.handler(streamCtx, l.Path),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       60 * time.Second,
			ErrorLog:          slog.NewLogLogger(s.Log.Handler(), slog.LevelDebug),
		}
		servers = append(servers, hs)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.Log.Error("tunnel listener failed", "addr", l.Addr().String(), "err", err)
			}
		}()
	}

	<-ctx.Done()
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	s.Log.Info("draining", "sessions", s.sessions.Load(), "streams", s.streams.Load(), "grace", grace)
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	// Shutdown closes the listeners and idle decoy connections; hijacked
	// tunnel connections are ours to end.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	for _, hs := range servers {
		hs.Shutdown(shutdownCtx)
	}
	cancel()

	drained := make(chan struct{})
	go func() {
		s.streamWG.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-deadline.C:
		s.Log.Info("grace period over, closing streams", "streams", s.streams.Load())
	}
	cancelStreams()
	s.mu.Lock()
	for sess := range s.live {
		sess.Close()
	}
	s.mu.Unlock()
	wg.Wait()
	s.sessionWG.Wait()
	<-drained
	return nil
}

// handler serves one tunnel listener: the WebSocket at path for requests
// with a valid token, the decoy for everything else.
func (s *Server) handler(ctx context.Context, path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path || !tunnel.IsUpgrade(r) {
			s.decoyHits.Add(1)
			s.Decoy.ServeHTTP(w, r)
			return
		}
		if err := s.Verifier.VerifyRequest(r); err != nil {
			s.authFailures.Add(1)
			s.decoyHits.Add(1)
			s.Log.Debug("tunnel refused", "err", err)
			s.Decoy.ServeHTTP(w, r)
			return
		}
		sess, err := tunnel.AcceptWS(w, r, s.Upstream.ProxyProtocol != 0, s.Log)
		if err != nil {
			s.Log.Warn("tunnel accept failed", "err", err)
			return
		}
		if !s.track(sess) {
			sess.Close()
			return
		}
		defer s.untrack(sess)
		s.Log.Info("tunnel up")
		s.serveSession(ctx, sess)
		s.Log.Info("tunnel down")
	})
}

func (s *Server) track(sess tunnel.Session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.live[sess] = struct{}{}
	s.sessions.Add(1)
	s.sessionWG.Add(1)
	return true
}

func (s *Server) untrack(sess tunnel.Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, sess)
	s.sessions.Add(-1)
	s.sessionWG.Done()
}

// serveSession accepts streams until the session ends. The request's
// handler goroutine runs it: net/http ends the request's context when the
// handler returns, and the session lives as long as it.
func (s *Server) serveSession(ctx context.Context, sess tunnel.Session) {
	defer sess.Close()
	for {
		st, err := sess.AcceptStream(ctx)
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.draining {
			s.mu.Unlock()
			s.refuse(st, tunnel.ReplyDraining)
			continue
		}
		s.streamWG.Add(1)
		s.mu.Unlock()
		s.streams.Add(1)
		go func() {
			defer s.streamWG.Done()
			defer s.streams.Add(-1)
			s.serveStream(ctx, st)
		}()
	}
}

// serveStream reads a stream's header, dials its route and relays.
func (s *Server) serveStream(ctx context.Context, st tunnel.Stream) {
	st.SetReadDeadline(time.Now().Add(HeaderTimeout))
	h, err := tunnel.ReadHeader(st)
	st.SetReadDeadline(time.Time{})
	if err != nil {
		s.Log.Debug("stream refused", "err", err)
		s.refuse(st, tunnel.ReplyBadHeader)
		return
	}
	up, err := s.Upstream.Dial(ctx, h.Route, h.Client)
	if err != nil {
		s.Log.Debug("stream refused", "route", h.Route, "err", err)
		if errors.Is(err, upstream.ErrUnknownRoute) {
			s.refuse(st, tunnel.ReplyUnknownRoute)
		} else {
			s.refuse(st, tunnel.ReplyUnreachable)
		}
		return
	}
	if err := tunnel.WriteReply(st, tunnel.ReplyOK); err != nil {
		up.Close()
		st.Close()
		return
	}
	res := relay.Pipe(ctx, st, up, s.Relay)
	if res.Err != nil {
		s.Log.Debug("stream relay ended", "route", h.Route, "err", res.Err, "up", res.AToB, "down", res.BToA)
	}
}

func (s *Server) refuse(st tunnel.Stream, r tunnel.Reply) {
	tunnel.WriteReply(st, r)
	st.Close()
}
