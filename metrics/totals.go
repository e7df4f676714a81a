package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Totals are the process's client counters summed over listeners and
// routes, for the stats page's history.
type Totals struct {
	Accepted  int64 // client connections accepted, since start
	BytesUp   int64 // relayed from clients to WhatsApp, since start
	BytesDown int64 // relayed from WhatsApp to clients, since start
}

// Totals sums the counters now; zero for a nil m. It collects the counters
// as a scrape does, so it costs a scrape of two metrics: call it every few
// seconds, not per connection.
func (m *Metrics) Totals() Totals {
	if m == nil {
		return Totals{}
	}
	var t Totals
	each(m.accepted, func(d *dto.Metric) { t.Accepted += int64(d.GetCounter().GetValue()) })
	each(m.bytes, func(d *dto.Metric) {
		v := int64(d.GetCounter().GetValue())
		for _, l := range d.GetLabel() {
			if l.GetName() == "direction" {
				if l.GetValue() == "up" {
					t.BytesUp += v
				} else {
					t.BytesDown += v
				}
			}
		}
	})
	return t
}

// each calls f with every series of c.
func each(c prometheus.Collector, f func(*dto.Metric)) {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) == nil {
			f(&d)
		}
	}
}
