package e2e

import (
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"ferry/edge"
	"ferry/internal/fake"
	"ferry/pool"
)

// TestFaults puts toxiproxy between edge and origin and injects, one after
// another, added latency, a cut connection, a stalled link and a
// bandwidth-limited link; after each fault clears, a new client gets
// through within seconds.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection")
	}
	echo := fake.Start(t, fake.Echo)
	o := startOrigin(t, "ws", "127.0.0.1:0", map[string][]string{"chat": {echo.Addr()}})
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	srv.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	px := toxiproxy.NewProxy(srv, "tunnel", "127.0.0.1:0", o.addr)
	if err := px.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Stop)
	e := startEdgeOrigins(t, &edge.Tunnels{Pool: pool.Pool{Peers: []pool.Peer{{Name: "via toxiproxy", Dialer: dialer(t, "ws://"+px.Listen+"/tunnel")}}}},
		&edge.Server{}, lspec{name: "chat", route: "chat"})

	// through checks that a new client gets an echo within limit.
	through := func(what string, limit time.Duration) {
		t.Helper()
		start := time.Now()
		for {
			c := e.dial(t, "chat")
			c.SetDeadline(time.Now().Add(limit))
			got, err := echoOnce(c, []byte("ping"))
			c.Close()
			if err == nil && string(got) == "ping" {
				t.Logf("%s: a new client got through after %v", what, time.Since(start).Round(time.Millisecond))
				return
			}
			if time.Since(start) > limit {
				t.Fatalf("%s: no client got through within %v: %v", what, limit, err)
			}
		}
	}
	toxic := func(json string) func() {
		t.Helper()
		w, err := px.Toxics.AddToxicJson(strings.NewReader(json))
		if err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := px.Toxics.RemoveToxic(t.Context(), w.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
	through("before any fault", 10*time.Second)

	clear := toxic(`{"type": "latency", "stream": "downstream", "attributes": {"latency": 150}}`)
	through("with 150 ms added latency", 10*time.Second)
	clear()
	through("after latency", 5*time.Second)

	px.Stop() // every connection through it is cut
	if err := px.Start(); err != nil {
		t.Fatal(err)
	}
	through("after a cut", 5*time.Second)

	clear = toxic(`{"type": "timeout", "stream": "downstream", "attributes": {"timeout": 0}}`)
	stalled := e.dial(t, "chat")
	stalled.SetDeadline(time.Now().Add(time.Second))
	if _, err := echoOnce(stalled, []byte("ping")); err == nil {
		t.Fatal("an echo got through a stalled link")
	}
	// What the link swallowed while it stood breaks the session's framing:
	// the edge redials.
	clear()
	through("after a stall", 5*time.Second)

	clear = toxic(`{"type": "bandwidth", "stream": "downstream", "attributes": {"rate": 64}}`)
	through("at 64 KB/s", 10*time.Second)
	clear()
	through("after the bandwidth limit", 5*time.Second)
}
