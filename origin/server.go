// Package origin accepts tunnels from edges and relays each stream to the
// target its route names. Tunnel listeners (package tunnel) authenticate
// edges and show everyone else an ordinary web site.
package origin

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"ferry/internal/redact"
	"ferry/metrics"
	"ferry/pool"
	"ferry/relay"
	"ferry/tunnel"
	"ferry/upstream"
)

// HeaderTimeout bounds the wait for a stream's header.
const HeaderTimeout = 10 * time.Second

// Server is an origin.
type Server struct {
	Listeners []tunnel.Listener
	// Edges are dialled by the origin (reverse mode), Pool sessions each;
	// the edges still open the streams.
	Edges []pool.Peer
	// Pool is how many sessions to keep per edge; zero means
	// pool.DefaultSize.
	Pool int
	// Backoff spaces redials; the zero value holds the defaults.
	Backoff  pool.Backoff
	Upstream *upstream.Dialer
	// Grace is how long streams may finish once Run's ctx has ended; zero
	// means DefaultGrace, and a negative Grace closes them at once.
	Grace time.Duration
	// Relay tunes every stream's relay; the zero value holds the defaults.
	Relay   relay.Options
	Metrics *metrics.Metrics // nil counts nothing
	// LogClientIPs keeps clients' addresses (those of the stream headers)
	// in the error texts of the lines about their streams; by default they
	// are taken out, and the targets' addresses stay.
	LogClientIPs bool
	Log          *slog.Logger

	sessions     atomic.Int64
	edgeDraining atomic.Int64 // sessions whose edge drains
	streams      atomic.Int64

	routeBytes map[string][2]relay.Counter // up and down; set by Run

	mu       sync.Mutex
	live     map[tunnel.Session]int // → where it came from (see Sources)
	draining bool                   // no new sessions or streams
	// Live sessions and streams; Add only under mu while not draining, so
	// that no Add races the drain's Wait.
	sessionWG, streamWG sync.WaitGroup
}

// Stats are the origin's gauges.
type Stats struct {
	Sessions, Streams int64 // live now
	EdgeDraining      int64 // sessions whose edge said it drains
}

func (s *Server) Stats() Stats {
	return Stats{Sessions: s.sessions.Load(), Streams: s.streams.Load(), EdgeDraining: s.edgeDraining.Load()}
}

// Source is the sessions that came one way: accepted by one of Listeners,
// or dialled to one of Edges.
type Source struct {
	Sessions int
	RTT      time.Duration // their mean; zero before any ping
}

// Sources returns the live sessions by where they came from: one Source
// for each of Listeners, then one for each of Edges. The origin does not
// know its edges but by their sessions.
func (s *Server) Sources() []Source {
	out := make([]Source, len(s.Listeners)+len(s.Edges))
	rtts := make([]time.Duration, len(out))
	pinged := make([]time.Duration, len(out)) // sessions with an RTT yet
	s.mu.Lock()
	for sess, i := range s.live {
		out[i].Sessions++
		if rtt := sess.RTT(); rtt > 0 {
			rtts[i] += rtt
			pinged[i]++
		}
	}
	s.mu.Unlock()
	for i := range out {
		if pinged[i] > 0 {
			out[i].RTT = rtts[i] / pinged[i]
		}
	}
	return out
}

// DefaultGrace is how long live streams may finish at a drain.
const DefaultGrace = 30 * time.Second

// Run serves until ctx ends, then drains: it closes the listeners, lets live
// streams finish for up to Grace, closes every session, and returns once
// every connection and goroutine it started has ended. It closes the
// listeners it was given in every case.
func (s *Server) Run(ctx context.Context) error {
	grace := max(0, cmp.Or(s.Grace, DefaultGrace))
	s.mu.Lock()
	s.live = map[tunnel.Session]int{}
	s.mu.Unlock()
	// Each route's byte counters, resolved once rather than per stream.
	s.routeBytes = map[string][2]relay.Counter{}
	for route := range s.Upstream.Targets {
		up, down := s.Metrics.Route(route)
		s.routeBytes[route] = [2]relay.Counter{up, down}
	}

	// Streams live until the grace period ends, past ctx.
	streamCtx, cancelStreams := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelStreams()

	// The upstream's reachability, and the edges told of it, for as long
	// as sessions live.
	var watch sync.WaitGroup
	watch.Go(func() { s.Upstream.Watch(streamCtx) })
	watch.Go(func() { s.tellEdges(streamCtx) })

	var accepts sync.WaitGroup
	for i, e := range s.Edges {
		source := len(s.Listeners) + i
		for range cmp.Or(s.Pool, pool.DefaultSize) {
			k := &pool.Keeper{Peer: e, Backoff: s.Backoff, Metrics: s.Metrics, Log: s.Log,
				Hold: func(ctx context.Context, sess tunnel.Session) string { return s.hold(ctx, streamCtx, sess, source) }}
			accepts.Go(func() { k.Run(ctx) })
		}
	}
	for source, l := range s.Listeners {
		accepts.Add(1)
		go func() {
			defer accepts.Done()
			for {
				sess, err := l.Accept(ctx)
				if err != nil {
					if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
						s.Log.Error("tunnel listener failed", "addr", l.Addr().String(), "err", err)
					}
					return
				}
				s.serveSession(streamCtx, sess, source)
			}
		}()
	}

	<-ctx.Done()
	accepts.Wait()
	s.mu.Lock()
	s.draining = true
	for sess := range s.live {
		// Edges move new clients elsewhere; live streams go on.
		sess.Drain()
	}
	s.mu.Unlock()
	s.Log.Info("draining", "sessions", s.sessions.Load(), "streams", s.streams.Load(), "grace", grace)
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	// No new sessions while streams drain; the live ones outlive their
	// listener.
	for _, l := range s.Listeners {
		l.Close()
	}

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
	s.sessionWG.Wait()
	<-drained
	watch.Wait()
	return nil
}

// hold serves a session the origin dialled until it ends, its edge drains
// or ctx ends, and says which; the session then goes on serving its streams
// while the Keeper dials a replacement.
func (s *Server) hold(ctx, streamCtx context.Context, sess tunnel.Session, source int) string {
	if !s.serveSession(streamCtx, sess, source) {
		return "closed: the origin drains"
	}
	select {
	case <-sess.Done():
		return "down"
	case <-sess.PeerDraining():
		return "draining"
	case <-ctx.Done():
		return "closed: the origin drains"
	}
}

// serveSession starts serving a new session from source (see Sources), and
// reports whether it did: a draining origin closes it.
func (s *Server) serveSession(ctx context.Context, sess tunnel.Session, source int) bool {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		sess.Close()
		return false
	}
	s.live[sess] = source
	s.sessionWG.Add(1)
	s.mu.Unlock()
	// After it is live: a change from now on reaches it through tellEdges.
	sess.TellUnreachable(s.unreachable())
	s.sessions.Add(1)
	s.Log.Info("tunnel up")
	go func() {
		defer s.sessionWG.Done()
		defer func() {
			s.mu.Lock()
			delete(s.live, sess)
			s.mu.Unlock()
			s.sessions.Add(-1)
			s.Log.Info("tunnel down")
		}()
		var watch sync.WaitGroup
		watch.Go(func() {
			select {
			case <-sess.PeerDraining():
				s.Log.Info("edge draining: no new streams expected")
				s.edgeDraining.Add(1)
				<-sess.Done()
				s.edgeDraining.Add(-1)
			case <-sess.Done():
			}
		})
		s.acceptStreams(ctx, sess) // closes sess
		watch.Wait()
	}()
	return true
}

// acceptStreams serves a session's streams until it ends.
func (s *Server) acceptStreams(ctx context.Context, sess tunnel.Session) {
	defer sess.Close()
	for {
		st, err := sess.AcceptStream(ctx)
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.draining {
			s.mu.Unlock()
			refuse(st, tunnel.ReplyDraining)
			continue
		}
		s.streamWG.Add(1)
		s.mu.Unlock()
		s.streams.Add(1)
		go func() {
			up, route, client := s.openStream(ctx, st)
			if up == nil {
				s.streams.Add(-1)
				s.streamWG.Done()
				return
			}
			// The relay waits, maybe for hours, on a fresh goroutine: the
			// dial grew this one's stack to 8 KiB or more, and a stack
			// shrinks only by half per garbage collection, which a process
			// of idle clients rarely runs.
			go func() {
				defer s.streamWG.Done()
				defer s.streams.Add(-1)
				s.relay(ctx, st, up, route, client)
			}()
		}()
	}
}

// openStream reads a stream's header, dials its route and answers; it
// returns the target's connection, the route and the client's address (the
// zero value when the edge sent none), or nil once it has refused the
// stream.
func (s *Server) openStream(ctx context.Context, st tunnel.Stream) (net.Conn, string, netip.AddrPort) {
	st.SetReadDeadline(time.Now().Add(HeaderTimeout))
	h, err := tunnel.ReadHeader(st)
	st.SetReadDeadline(time.Time{})
	if err != nil {
		s.Log.Debug("stream refused", "err", err)
		refuse(st, tunnel.ReplyBadHeader)
		return nil, "", netip.AddrPort{}
	}
	if r, ok := s.Upstream.Targets[h.Route]; ok && r.IsMedia(h.Route) {
		tunnel.SetBulk(st) // a download gives way to chat on a slow link
	}
	up, err := s.Upstream.Dial(ctx, h.Route, h.ServerName, h.Client)
	if err != nil {
		s.Log.Debug("stream refused", "route", h.Route, s.errAttr(err, h.Client))
		switch {
		case errors.Is(err, upstream.ErrUnknownRoute):
			refuse(st, tunnel.ReplyUnknownRoute)
		case errors.Is(err, upstream.ErrNameNotAllowed):
			refuse(st, tunnel.ReplyNotAllowed)
		default:
			refuse(st, tunnel.ReplyUnreachable)
		}
		return nil, "", netip.AddrPort{}
	}
	if err := tunnel.WriteReply(st, tunnel.ReplyOK); err != nil {
		up.Close()
		st.Close()
		return nil, "", netip.AddrPort{}
	}
	return up, h.Route, h.Client
}

// relay relays a stream to its target until either side ends.
func (s *Server) relay(ctx context.Context, st tunnel.Stream, up net.Conn, route string, client netip.AddrPort) {
	o := s.Relay
	b := s.routeBytes[route]
	o.AToB, o.BToA = b[0], b[1]
	res := relay.Pipe(ctx, st, up, o)
	if res.Err != nil {
		s.Log.Debug("stream relay ended", "route", route, s.errAttr(res.Err, client), "up", res.AToB, "down", res.BToA)
	}
}

// errAttr is err for a log line about client's stream: with the client's
// address (from the stream header) taken out, unless LogClientIPs. With no
// address in the header, there is none to take out: the target's stays.
func (s *Server) errAttr(err error, client netip.AddrPort) slog.Attr {
	if !client.IsValid() {
		return slog.Any("err", err)
	}
	return redact.Err(err, s.LogClientIPs, client.Addr())
}

// refuse answers a stream with r and ends it; the reply is sent before the
// end, so that the edge learns why.
func refuse(st tunnel.Stream, r tunnel.Reply) {
	tunnel.WriteReply(st, r)
	st.CloseWrite()
	st.Close()
}
