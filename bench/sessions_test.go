package bench

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 40; i >= 1; i-- { // out of order: percentile sorts a copy
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    int
		want time.Duration
	}{{50, 21 * time.Millisecond}, {90, 37 * time.Millisecond}, {100, 40 * time.Millisecond}, {0, time.Millisecond}} {
		if got := percentile(ds, c.p); got != c.want {
			t.Errorf("p%d = %v, want %v", c.p, got, c.want)
		}
	}
	if ds[0] != 40*time.Millisecond {
		t.Error("percentile sorted its argument")
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of none = %v", got)
	}
	if got := percentile([]time.Duration{3}, 90); got != 3 {
		t.Errorf("p90 of one = %v", got)
	}
}

// Each binary gets a row, this one first with its ratios to the previous.
func TestSessionRows(t *testing.T) {
	ms := func(l, a int) setupTime {
		return setupTime{time.Duration(l) * time.Millisecond, time.Duration(a) * time.Millisecond}
	}
	fs := []ferry{{"new", "this"}, {"old", "previous"}}
	rows := sessionRows("quic", fs, [][]setupTime{{ms(3, 4), ms(1, 1), ms(2, 2)}, {ms(4, 4), ms(8, 8), ms(6, 6)}})
	want := []Sessions{
		{Transport: "quic", Ferry: "this", Setups: 3, P50: 2, P90: 3, ArrivalP50: 2, XPrevP50: 2.0 / 6, XPrevP90: 3.0 / 8},
		{Transport: "quic", Ferry: "previous", Setups: 3, P50: 6, P90: 8, ArrivalP50: 6},
	}
	if len(rows) != 2 || rows[0] != want[0] || rows[1] != want[1] {
		t.Errorf("rows:\n%+v\nwant\n%+v", rows, want)
	}
	if rows := sessionRows("ws", fs[:1], [][]setupTime{{ms(1, 1)}}); len(rows) != 1 || rows[0].XPrevP50 != 0 {
		t.Errorf("rows without a previous binary: %+v", rows)
	}
}
