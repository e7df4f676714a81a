package e2e

import (
	"bytes"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"ferry/edge"
	"ferry/internal/fake"
	"ferry/metrics"
	"ferry/origin"
	"ferry/pool"
	"ferry/tunnel"
	"ferry/upstream"
)

// metricValue is the value of the series of name with (at least) labels in
// reg; a histogram's is its count. It is -1 when there is no such series.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// TestMetrics relays a few clients and checks what the edge's and the
// origin's metrics say of them.
func TestMetrics(t *testing.T) {
	echo := fake.Start(t, fake.Echo)
	om, em := metrics.New("origin", "test"), metrics.New("edge", "test")
	up := &upstream.Dialer{Targets: fixed(map[string][]string{"chat": {echo.Addr()}}), Timeout: time.Second, Metrics: om}
	ln, url := listenTunnel(t, "ws", "127.0.0.1:0", originEnd(t, up))
	o := runOrigin(t, &origin.Server{Listeners: []tunnel.Listener{ln}, Upstream: up, Metrics: om})
	e := startEdgeOrigins(t, &edge.Tunnels{Pool: pool.Pool{Peers: []pool.Peer{{Name: "o", Dialer: dialer(t, url)}}, Metrics: em}},
		&edge.Server{Metrics: em}, lspec{name: "chat", route: "chat"}, lspec{name: "nowhere", route: "nowhere"})

	msg := bytes.Repeat([]byte("x"), 1000)
	for range 3 {
		c := e.dial(t, "chat")
		if got, err := echoOnce(c, msg); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo: %v", err)
		}
		c.Close()
	}
	c := e.dial(t, "nowhere")
	c.Write([]byte("hello"))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("a client of an unknown route got an answer")
	}
	c.Close()
	eventually(t, "every client counted out", func() bool { return e.srv.Stats().Active == 0 && o.srv.Stats().Streams == 0 })

	chat := map[string]string{"route": "chat"}
	for _, c := range []struct {
		reg    *prometheus.Registry
		name   string
		labels map[string]string
		want   float64
	}{
		{em.Registry, "ferry_connections_accepted_total", chat, 3},
		{em.Registry, "ferry_connections_active", chat, 0},
		{em.Registry, "ferry_connections_refused_total", map[string]string{"route": "nowhere", "reason": metrics.RefusedRoute}, 1},
		{em.Registry, "ferry_bytes_total", map[string]string{"route": "chat", "direction": "up"}, 3000},
		{em.Registry, "ferry_bytes_total", map[string]string{"route": "chat", "direction": "down"}, 3000},
		{em.Registry, "ferry_connection_setup_seconds", chat, 3},
		{em.Registry, "ferry_connection_duration_seconds", chat, 3},
		{em.Registry, "ferry_tunnel_sessions_up", map[string]string{"peer": "o"}, pool.DefaultSize},
		{em.Registry, "ferry_tunnel_dials_total", map[string]string{"peer": "o", "result": "ok"}, pool.DefaultSize},
		{om.Registry, "ferry_target_dials_total", map[string]string{"route": "chat", "target": echo.Addr(), "result": "ok"}, 3},
		{om.Registry, "ferry_bytes_total", map[string]string{"route": "chat", "direction": "up"}, 3000},
	} {
		if got := metricValue(t, c.reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	eventually(t, "a ping's RTT", func() bool {
		return metricValue(t, em.Registry, "ferry_tunnel_rtt_seconds", map[string]string{"peer": "o"}) > 0
	})
}
