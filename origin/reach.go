package origin

import (
	"context"

	"ferry/tunnel"
)

// unreachable returns the routes the origin cannot reach now, as its edges
// are told.
func (s *Server) unreachable() tunnel.Routes {
	var r tunnel.Routes
	for _, d := range s.Upstream.Unreachable() {
		r |= tunnel.RouteOf(d.Route)
	}
	return r
}

// tellEdges keeps the upstream's reachability and tells every session at
// each change of it, until ctx ends; a new session is told when it starts
// (serveSession). Edges then show that the origin cannot reach WhatsApp,
// and prefer another origin that can.
func (s *Server) tellEdges(ctx context.Context) {
	for {
		changed := s.Upstream.Changed()
		r := s.unreachable()
		s.mu.Lock()
		for sess := range s.live {
			sess.TellUnreachable(r)
		}
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}
