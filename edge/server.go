// Package edge accepts client connections and relays each one to its route:
// through a tunnel to an origin (ferry edge) or straight to the target
// (ferry standalone).
package edge

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferryproxy/ferry/relay"
)

// Listener is a client listener and the route its connections take.
type Listener struct {
	net.Listener
	Route string
}

// ConnectFunc connects a client of route to its destination. client is the
// client's address, for the destination's PROXY header when one is sent.
type ConnectFunc func(ctx context.Context, route string, client net.Addr) (net.Conn, error)

// Server accepts clients on its listeners and relays each to its route.
type Server struct {
	Listeners []Listener
	Connect   ConnectFunc
	// MaxConns caps concurrent clients; more are closed at once. Zero means
	// no cap.
	MaxConns int
	// Relay tunes every client's relay; the zero value holds the defaults.
	Relay relay.Options
	Log   *slog.Logger

	active  atomic.Int64
	refused atomic.Int64
}

// Active returns the number of clients being relayed.
func (s *Server) Active() int64 { return s.active.Load() }

// Refused returns the number of clients closed because MaxConns was reached.
func (s *Server) Refused() int64 { return s.refused.Load() }

// Run serves until ctx ends, then drains: it closes the listeners, lets live
// clients finish for up to grace, closes those still open, and returns once
// every connection and goroutine it started has ended. It closes the
// listeners it was given in every case.
func (s *Server) Run(ctx context.Context, grace time.Duration) error {
	connCtx, cancelConns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelConns()

	var conns sync.WaitGroup
	var accepts sync.WaitGroup
	for _, l := range s.Listeners {
		accepts.Add(1)
		go func() {
			defer accepts.Done()
			s.accept(connCtx, l, &conns)
		}()
	}

	<-ctx.Done()
	for _, l := range s.Listeners {
		l.Close()
	}
	accepts.Wait()
	s.Log.Info("draining", "clients", s.active.Load(), "grace", grace)

	drained := make(chan struct{})
	go func() {
		conns.Wait()
		close(drained)
	}()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-drained:
	case <-timer.C:
		s.Log.Info("grace period over, closing clients", "clients", s.active.Load())
		cancelConns()
		<-drained
	}
	return nil
}

// accept runs one listener's accept loop until the listener is closed.
func (s *Server) accept(ctx context.Context, l Listener, conns *sync.WaitGroup) {
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http does
			// rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.Log.Warn("accept failed", "listener", l.Addr().String(), "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
				continue
			case <-ctx.Done():
				return
			}
		}
		delay = 0
		if s.MaxConns > 0 && s.active.Load() >= int64(s.MaxConns) {
			s.refused.Add(1)
			c.Close()
			continue
		}
		s.active.Add(1)
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer s.active.Add(-1)
			s.serve(ctx, c, l.Route)
		}()
	}
}

// serve relays one client to its route.
func (s *Server) serve(ctx context.Context, c net.Conn, route string) {
	up, err := s.Connect(ctx, route, c.RemoteAddr())
	if err != nil {
		s.Log.Debug("client not connected", "route", route, "err", err)
		c.Close()
		return
	}
	res := relay.Pipe(ctx, c, up, s.Relay)
	if res.Err != nil {
		s.Log.Debug("client relay ended", "route", route, "err", res.Err, "up", res.AToB, "down", res.BToA)
	}
}
