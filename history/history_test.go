package history

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestMinute checks, in fake time, that Run makes one point a minute: the
// peak of a gauge's readings and the rise of a counter within it.
func TestMinute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var gauge, counter atomic.Int64
		counter.Store(100) // before the history: not counted
		var h History
		h.Add("phones", Peak, gauge.Load)
		h.Add("new", Sum, counter.Load)
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		// Start a second into a minute, so that samples fall inside it.
		time.Sleep(time.Until(time.Now().Truncate(Step).Add(Step + time.Second)))
		wg.Go(func() { h.Run(ctx, 10*time.Second) })
		synctest.Wait()
		for i, g := range []int64{3, 9, 4, 2, 1, 5} { // six samples: one minute
			gauge.Store(g)
			counter.Add(int64(i + 1))
			time.Sleep(10 * time.Second)
			synctest.Wait()
		}
		// The sixth sleep's sample opened the second minute, with 5 and +6.
		p, _ := h.Get("phones")
		n, _ := h.Get("new")
		if !slices.Equal(p.Points, []int64{9, 5}) || !slices.Equal(n.Points, []int64{0 + 1 + 2 + 3 + 4 + 5, 6}) {
			t.Errorf("points: phones %v, new %v", p.Points, n.Points)
		}
		if p.Max() != 9 || n.Total() != 21 {
			t.Errorf("max %d, total %d", p.Max(), n.Total())
		}
		cancel()
		wg.Wait()
	})
}

// TestFull checks that 24 h and a minute of samples keep 24 h: the oldest
// minute is dropped.
func TestFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var v int64
		var h History
		h.Add("x", Peak, func() int64 { return v })
		start := time.Now().Truncate(Step)
		for i := range Points + 1 {
			v = int64(i + 1)
			h.Sample(start.Add(time.Duration(i) * Step))
		}
		s, _ := h.Get("x")
		if len(s.Points) != Points || s.Points[0] != 2 || s.Points[Points-1] != Points+1 {
			t.Fatalf("%d points, first %d, last %d", len(s.Points), s.Points[0], s.Points[len(s.Points)-1])
		}
		if !s.End.Equal(start.Add(Points * Step)) {
			t.Errorf("end %v", s.End)
		}
	})
}

// TestGap checks that hours without a sample (a suspended process) are
// zeros, and that a gap of days costs no more than 24 h of zeros.
func TestGap(t *testing.T) {
	var h History
	var c int64
	h.Add("bytes", Sum, func() int64 { return c })
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c = 10
	h.Sample(start)
	c = 25
	h.Sample(start.Add(3 * time.Hour))
	s, _ := h.Get("bytes")
	if len(s.Points) != 3*60+1 || s.Points[0] != 10 || s.Points[len(s.Points)-1] != 15 || s.Total() != 25 {
		t.Fatalf("after 3 h: %d points, %d ... %d", len(s.Points), s.Points[0], s.Points[len(s.Points)-1])
	}
	c = 30
	h.Sample(start.Add(400 * 24 * time.Hour))
	s, _ = h.Get("bytes")
	if len(s.Points) != Points || s.Total() != 5 || s.Points[Points-1] != 5 {
		t.Fatalf("after 400 days: %d points, total %d", len(s.Points), s.Total())
	}
	// The clock steps back: the readings count in the newest minute.
	c = 31
	h.Sample(start)
	s, _ = h.Get("bytes")
	if len(s.Points) != Points || s.Points[Points-1] != 6 {
		t.Errorf("after a step back: last %d", s.Points[Points-1])
	}
}

// TestMemory reports what a full 24 h history of the stats page's four
// series costs: computed exactly from the types' sizes, and checked
// against what making one and filling it allocates (runtime.MemStats's
// TotalAlloc, which frees and GC timing do not blur, and which counts the
// closures and the slice of series too).
func TestMemory(t *testing.T) {
	const nseries = 4
	exact := unsafe.Sizeof(History{}) + nseries*(unsafe.Sizeof(series{})+unsafe.Sizeof((*series)(nil)))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	h := new(History)
	for range nseries {
		h.Add("s", Sum, func() int64 { return 1 })
	}
	start := time.Now()
	for i := range Points + 10 {
		h.Sample(start.Add(time.Duration(i) * Step))
	}
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("24 h of %d series: %d bytes computed (%d a series), %d bytes allocated, measured", nseries, exact, unsafe.Sizeof(series{}), allocated)
	if exact > 50_000 || allocated < uint64(exact) || allocated > uint64(exact)+4096 {
		t.Errorf("%d bytes computed, %d allocated", exact, allocated)
	}
	runtime.KeepAlive(h)
}

func BenchmarkSample(b *testing.B) {
	var h History
	for range 4 {
		h.Add("s", Sum, func() int64 { return 1 })
	}
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Sample(now.Add(time.Duration(i) * Step))
	}
}
