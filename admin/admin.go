// Package admin serves the admin endpoint: Prometheus metrics at /metrics,
// /healthz, /readyz, and at / a stats page for the volunteer who runs the
// process (page.go): phones connected now, the last 24 hours as graphs,
// listeners, tunnel peers, WhatsApp's reachability, the share link and its
// QR code.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"ferry/history"
	"ferry/link"
	"ferry/metrics"
)

// Server is an admin endpoint.
type Server struct {
	Role, Version string
	Metrics       *metrics.Metrics
	// Ready says why the process is not ready for traffic, nil when it is:
	// an edge with no tunnel session, or any role while it drains.
	Ready func() error
	// Link is the edge's share link; empty when not known.
	Link string
	Log  *slog.Logger

	// Status is what the stats page shows of the process now; nil shows
	// only readiness, the graphs and the share link.
	Status func() Status
	// History is the graphs' figures (NewHistory); Serve samples it until
	// its ctx ends. Nil draws no graph.
	History *history.History
	// Routes is WhatsApp's reachability, route by route, as an origin or
	// standalone sees it; nil leaves the section out.
	Routes func() []Route
	// OriginNote is, on an edge, what its origins report that the edge
	// cannot see itself: "" when all is well, else e.g. "the origin cannot
	// reach WhatsApp (chat)", shown next to readiness. Nil shows nothing.
	OriginNote func() string

	started time.Time
}

// Handler returns the endpoint's routes.
func (s *Server) Handler() http.Handler {
	if s.started.IsZero() {
		s.started = time.Now()
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /qr.png", s.qr)
	mux.HandleFunc("GET /{$}", s.page)
	return mux
}

func (s *Server) ready() error {
	if s.Ready == nil {
		return nil
	}
	return s.Ready()
}

// Serve serves on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.Log.Handler(), slog.LevelDebug),
	}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	// The history is kept only where it can be seen: with the endpoint,
	// for as long as it serves.
	var wg sync.WaitGroup
	if s.History != nil {
		// A first point before the first request: the page never shows
		// a history with nothing in it.
		s.History.Sample(time.Now())
		hctx, cancel := context.WithCancel(ctx)
		defer wg.Wait()
		defer cancel()
		wg.Go(func() { s.History.Run(hctx, 0) })
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin endpoint: %w", err)
	}
	return nil
}

func (s *Server) qr(w http.ResponseWriter, r *http.Request) {
	if s.Link == "" {
		http.NotFound(w, r)
		return
	}
	code, err := link.QR(s.Link)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Write(code.PNG())
}
