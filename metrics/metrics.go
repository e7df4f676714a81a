// Package metrics holds ferry's Prometheus metrics, all named ferry_*, on a
// registry of their own: the admin endpoint serves them and its stats page
// shows them.
//
// Counters that the code paths keep anyway (sessions, auth failures, decoy
// hits) are read at scrape time through functions given to Peer,
// TunnelListener and Origin; what happens per connection is counted here,
// on children resolved once per listener, so that a connection costs no
// label lookup.
package metrics

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is one process's metrics. A nil *Metrics counts nothing.
type Metrics struct {
	Registry *prometheus.Registry

	accepted *prometheus.CounterVec
	active   *prometheus.GaugeVec
	refused  *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	setup    *prometheus.HistogramVec
	tdials   *prometheus.CounterVec
	tdown    *prometheus.CounterVec
	dials    *prometheus.CounterVec
	site     *prometheus.CounterVec

	// newClient, if set, is told of every accepted client connection too:
	// the edge's block detector (alert.Detector) counts them.
	newClient func()
}

// Refusal reasons of ferry_connections_refused_total.
const (
	RefusedCap       = "cap"       // FERRY_EDGE_MAX_CONNS or _PER_IP
	RefusedHandshake = "handshake" // bad PROXY header, failed TLS, or silent
	RefusedRoute     = "route"     // no session, or the target could not be reached
)

// New makes the metrics of a process of role (edge, origin or standalone)
// at version.
func New(role, version string) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ferry_build_info", Help: "Always 1; the labels say what runs.",
		ConstLabels: prometheus.Labels{"role": role, "version": version},
	})
	info.Set(1)
	f(info)
	m := &Metrics{Registry: reg}
	lr := []string{"listener", "route"}
	m.accepted = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_connections_accepted_total", Help: "Client connections accepted."}, lr)
	m.active = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ferry_connections_active", Help: "Client connections open now."}, lr)
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_connections_refused_total", Help: "Client connections closed without a relay: reason cap, handshake or route."}, append(lr, "reason"))
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_bytes_total", Help: "Bytes relayed: direction up is client to WhatsApp, down the other way."}, []string{"route", "direction"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "ferry_connection_duration_seconds", Help: "How long relayed client connections lasted.",
		Buckets: []float64{1, 10, 60, 300, 1800, 3600, 4 * 3600, 24 * 3600},
	}, []string{"route"})
	m.setup = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "ferry_connection_setup_seconds", Help: "From a client's first bytes to its destination's confirmation: the stream's reply, or the dial in standalone.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route"})
	m.tdials = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_tunnel_dials_total", Help: "Tunnel dials to a peer, by result (ok or failed)."}, []string{"peer", "result"})
	m.tdown = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_tunnel_reconnects_total", Help: "Sessions to a peer that went down or drained and were redialled."}, []string{"peer"})
	m.dials = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_target_dials_total", Help: "Dials of a route's target alternatives, by result (ok or failed)."}, []string{"route", "target", "result"})
	m.site = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_site_visits_total", Help: "Client connections that did not speak WhatsApp and were served the edge's web site (FERRY_EDGE_DECOY): scanners, probers and browsers."}, []string{"listener"})
	for _, c := range []prometheus.Collector{m.accepted, m.active, m.refused, m.bytes, m.duration, m.setup, m.tdials, m.tdown, m.dials, m.site} {
		f(c)
	}
	return m
}

// Listener counts the connections of one client listener.
type Listener struct {
	accepted, up, down                  prometheus.Counter
	active                              prometheus.Gauge
	refusedCap, refusedHS, refusedRoute prometheus.Counter
	duration, setup                     prometheus.Observer
	site                                prometheus.Counter
	newClient                           func()
}

// Listener returns the counters of a listener's connections; nil for a nil
// m.
func (m *Metrics) Listener(listener, route string) *Listener {
	if m == nil {
		return nil
	}
	return &Listener{
		accepted:     m.accepted.WithLabelValues(listener, route),
		active:       m.active.WithLabelValues(listener, route),
		refusedCap:   m.refused.WithLabelValues(listener, route, RefusedCap),
		refusedHS:    m.refused.WithLabelValues(listener, route, RefusedHandshake),
		refusedRoute: m.refused.WithLabelValues(listener, route, RefusedRoute),
		up:           m.bytes.WithLabelValues(route, "up"),
		down:         m.bytes.WithLabelValues(route, "down"),
		duration:     m.duration.WithLabelValues(route),
		setup:        m.setup.WithLabelValues(route),
		site:         m.site.WithLabelValues(listener),
		newClient:    m.newClient,
	}
}

// Accepted counts a connection in; Closed counts it out.
func (l *Listener) Accepted() {
	if l != nil {
		l.accepted.Inc()
		l.active.Inc()
		if l.newClient != nil {
			l.newClient()
		}
	}
}

func (l *Listener) Closed() {
	if l != nil {
		l.active.Dec()
	}
}

// Site counts a connection handed to the web site.
func (l *Listener) Site() {
	if l != nil {
		l.site.Inc()
	}
}

// Refused counts a connection closed for reason (RefusedCap, …).
func (l *Listener) Refused(reason string) {
	if l == nil {
		return
	}
	switch reason {
	case RefusedCap:
		l.refusedCap.Inc()
	case RefusedHandshake:
		l.refusedHS.Inc()
	default:
		l.refusedRoute.Inc()
	}
}

// Setup records how long a connection took to reach its destination.
func (l *Listener) Setup(d time.Duration) {
	if l != nil {
		l.setup.Observe(d.Seconds())
	}
}

// Relayed records a relayed connection's life.
func (l *Listener) Relayed(d time.Duration) {
	if l != nil {
		l.duration.Observe(d.Seconds())
	}
}

// Bytes returns the counters of bytes up (client to WhatsApp) and down, as
// a relay adds to them; nil counters for a nil l.
func (l *Listener) Bytes() (up, down prometheus.Counter) {
	if l == nil {
		return nil, nil
	}
	return l.up, l.down
}

// Route returns the byte counters of a route, for an origin's streams.
func (m *Metrics) Route(route string) (up, down prometheus.Counter) {
	if m == nil {
		return nil, nil
	}
	return m.bytes.WithLabelValues(route, "up"), m.bytes.WithLabelValues(route, "down")
}

// TunnelDial counts a dial of a tunnel peer.
func (m *Metrics) TunnelDial(peer string, err error) {
	if m != nil {
		m.tdials.WithLabelValues(peer, result(err)).Inc()
	}
}

// TunnelReconnect counts a session to peer replaced.
func (m *Metrics) TunnelReconnect(peer string) {
	if m != nil {
		m.tdown.WithLabelValues(peer).Inc()
	}
}

// TargetDial counts a dial of one of route's target alternatives.
func (m *Metrics) TargetDial(route, target string, err error) {
	if m != nil {
		m.dials.WithLabelValues(route, target, result(err)).Inc()
	}
}

func result(err error) string {
	if err != nil {
		return "failed"
	}
	return "ok"
}

// Peer registers the gauges of a tunnel peer's sessions, read at scrape
// time: how many are up and in service, and the mean round trip of their
// latest pings.
func (m *Metrics) Peer(peer string, sessionsUp func() float64, rtt func() time.Duration) {
	labels := prometheus.Labels{"peer": peer}
	m.gaugeFunc("ferry_tunnel_sessions_up", "Tunnel sessions up and in service, per peer.", labels, sessionsUp)
	m.gaugeFunc("ferry_tunnel_rtt_seconds", "Mean round trip of the latest pings of a peer's sessions; 0 with none up.", labels,
		func() float64 { return rtt().Seconds() })
}

// TunnelListener registers the counters of a tunnel listener at addr, read
// at scrape time: connections refused for a bad token or hello, and, where
// the listener speaks HTTP (decoyHits not nil), requests given the decoy.
func (m *Metrics) TunnelListener(addr string, authFailures, decoyHits func() float64) {
	labels := prometheus.Labels{"listener": addr}
	m.counterFunc("ferry_tunnel_auth_failures_total", "Tunnel connections refused for a bad token or hello.", labels, authFailures)
	if decoyHits != nil {
		m.counterFunc("ferry_decoy_hits_total", "Requests answered with the decoy site.", labels, decoyHits)
	}
}

// NewClients has f called for every client connection accepted by the
// listeners whose counters are made after it (Listener): where the edge
// counts accepted connections, its block detector counts new clients. f
// runs on the accept path, so it must be cheap (an atomic add).
func (m *Metrics) NewClients(f func()) {
	if m != nil {
		m.newClient = f
	}
}

// BlockSuspected registers ferry_edge_block_suspected, read at scrape time:
// 1 while the edge's new clients have collapsed as a block by IP makes
// them (alert.Detector), else 0.
func (m *Metrics) BlockSuspected(f func() float64) {
	m.gaugeFunc("ferry_edge_block_suspected", "1 while new clients have stopped coming as when the edge's address is blocked, else 0.", nil, f)
}

// CertificateExpiry registers ferry_certificate_expiry_timestamp_seconds,
// read at scrape time: when the certificate served to clients expires, in
// Unix seconds, or 0 while there is none (f returns the zero time).
func (m *Metrics) CertificateExpiry(f func() time.Time) {
	m.gaugeFunc("ferry_certificate_expiry_timestamp_seconds", "When the certificate the edge serves (FERRY_EDGE_TLS_CERT, or FERRY_EDGE_ACME's) expires, in Unix seconds; 0 while it has none.", nil,
		func() float64 {
			t := f()
			if t.IsZero() {
				return 0
			}
			return float64(t.Unix())
		})
}

// RouteReachable registers ferry_route_reachable for route, read at scrape
// time: 0 while every alternative of the route has failed for 30 s
// (upstream.Dialer.Watch), else 1.
func (m *Metrics) RouteReachable(route string, f func() float64) {
	m.gaugeFunc("ferry_route_reachable", "0 while every alternative of the route has failed for 30 s, else 1.", prometheus.Labels{"route": route}, f)
}

// Origin registers an origin's gauges, read at scrape time: its edges'
// sessions up, those whose edge said it drains, and the streams relayed.
func (m *Metrics) Origin(sessions, edgeDraining, streams func() float64) {
	m.gaugeFunc("ferry_tunnel_sessions", "Tunnel sessions of edges, up now.", nil, sessions)
	m.gaugeFunc("ferry_tunnel_sessions_edge_draining", "Tunnel sessions whose edge said it drains.", nil, edgeDraining)
	m.gaugeFunc("ferry_streams_active", "Streams relayed to targets now.", nil, streams)
}

func (m *Metrics) gaugeFunc(name, help string, labels prometheus.Labels, f func() float64) {
	if m != nil {
		m.register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, f))
	}
}

func (m *Metrics) counterFunc(name, help string, labels prometheus.Labels, f func() float64) {
	if m != nil {
		m.register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, f))
	}
}

// register registers c; a second registration of the same labels (two
// listeners on one address cannot happen, two peers with one name can) keeps
// the first.
func (m *Metrics) register(c prometheus.Collector) {
	var are prometheus.AlreadyRegisteredError
	if err := m.Registry.Register(c); err != nil && !errors.As(err, &are) {
		panic(err)
	}
}
