package metrics

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBlockAlertMetrics(t *testing.T) {
	m := New("edge", "test")
	var clients int
	m.NewClients(func() { clients++ })
	suspected := 0.0
	m.BlockSuspected(func() float64 { return suspected })
	var expiry time.Time
	m.CertificateExpiry(func() time.Time { return expiry })

	l := m.Listener(":443", "chat")
	l.Accepted()
	l.Accepted()
	if clients != 2 {
		t.Errorf("NewClients saw %d of 2 accepted", clients)
	}
	// testutil would do this, but it pulls in a module of its own.
	check := func(exp, susp float64) {
		t.Helper()
		mfs, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			if len(mf.GetMetric()) == 1 && mf.GetMetric()[0].GetGauge() != nil {
				got[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		if got["ferry_certificate_expiry_timestamp_seconds"] != exp || got["ferry_edge_block_suspected"] != susp {
			t.Errorf("expiry %v, suspected %v; want %v, %v", got["ferry_certificate_expiry_timestamp_seconds"], got["ferry_edge_block_suspected"], exp, susp)
		}
	}
	check(0, 0)
	expiry = time.Unix(1800000000, 0)
	suspected = 1
	check(1800000000, 1)

	// A nil *Metrics counts nothing, and does not panic.
	var nm *Metrics
	nm.NewClients(func() {})
	nm.BlockSuspected(func() float64 { return 1 })
	nm.CertificateExpiry(time.Now)
}

// TestTotals checks that Totals sums the accepted connections and the
// bytes each way over every listener and route.
func TestTotals(t *testing.T) {
	m := New("edge", "test")
	a, b := m.Listener("tcp://:5222/chat", "chat"), m.Listener("tcp://:587/media", "media")
	a.Accepted()
	a.Accepted()
	b.Accepted()
	up, down := a.Bytes()
	up.Add(100)
	down.Add(2000)
	up, down = m.Route("media")
	up.Add(5)
	down.Add(7)
	if got, want := m.Totals(), (Totals{Accepted: 3, BytesUp: 105, BytesDown: 2007}); got != want {
		t.Errorf("%+v, want %+v", got, want)
	}
	if (*Metrics)(nil).Totals() != (Totals{}) {
		t.Error("nil metrics")
	}
}
