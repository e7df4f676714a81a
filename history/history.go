// Package history keeps the last 24 hours of a few figures in the process,
// at minute resolution, for the stats page: one ring buffer of Points
// values per series, so that its memory is the same after a minute and
// after a year, and whatever the clock does.
//
// A series is read from a source at each Sample (Run samples every few
// seconds): a Peak series keeps the highest reading of each minute (phones
// connected), a Sum series the increase of a counter over the minute (new
// connections, bytes).
package history

import (
	"context"
	"sync"
	"time"
)

// Points is how many minutes a series holds: 24 hours.
const Points = 24 * 60

// Step is the resolution of a series.
const Step = time.Minute

// DefaultEvery is how often Run samples: often enough that a minute's peak
// is seen, rarely enough to cost nothing.
const DefaultEvery = 10 * time.Second

// Kind is how a series makes a minute's point of its readings.
type Kind int

const (
	Peak Kind = iota // the highest reading in the minute, of a gauge
	Sum              // how much a counter rose in the minute
)

// History is a set of series sampled together. The zero value holds no
// series; add them (Add) before the first Sample. It is safe for
// concurrent use.
type History struct {
	mu     sync.Mutex
	series []*series
	newest time.Time // the minute of each ring's newest point; zero before the first Sample
}

type series struct {
	name string
	kind Kind
	read func() int64
	last int64 // a Sum series's reading at the last Sample

	ring [Points]int64
	head int // index of the newest point
	n    int // points recorded, at most Points
}

// Add adds a series called name, read from read at each Sample. A Sum
// series counts from read's value now: what the counter held before is not
// in its first minute.
func (h *History) Add(name string, kind Kind, read func() int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &series{name: name, kind: kind, read: read}
	if kind == Sum {
		s.last = read()
	}
	h.series = append(h.series, s)
}

// Sample reads every series at now and records the readings in now's
// minute. A minute later than the last one's starts new points, zeros for
// the minutes in between (the process was suspended, or nothing sampled):
// at most Points of them, however long the gap. A now earlier than the
// last minute (the wall clock stepped back) counts in the newest minute,
// so that points stay one per minute and in order.
func (h *History) Sample(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	minute := now.Truncate(Step)
	steps := 0
	switch {
	case h.newest.IsZero():
		steps = 1
	case minute.After(h.newest):
		steps = int(min(minute.Sub(h.newest)/Step, Points))
	}
	if steps > 0 {
		h.newest = minute
	}
	for _, s := range h.series {
		for range steps {
			s.head = (s.head + 1) % Points
			s.ring[s.head] = 0
			s.n = min(s.n+1, Points)
		}
		v := s.read()
		switch s.kind {
		case Peak:
			s.ring[s.head] = max(s.ring[s.head], v)
		case Sum:
			// A counter that went down was reset (it cannot be, here;
			// a restarted source would be): count from its new value.
			s.ring[s.head] += max(0, v-s.last)
			s.last = v
		}
	}
}

// Run samples every every (zero means DefaultEvery) until ctx ends.
func (h *History) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultEvery
	}
	h.Sample(time.Now())
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.Sample(now)
		}
	}
}

// Series is a copy of one series: its points, oldest first, one per minute,
// the last that of the minute starting at End.
type Series struct {
	Name   string
	Kind   Kind
	Points []int64
	End    time.Time
}

// Max is the highest point, 0 for none.
func (s Series) Max() int64 {
	var m int64
	for _, v := range s.Points {
		m = max(m, v)
	}
	return m
}

// Total is the sum of the points.
func (s Series) Total() int64 {
	var t int64
	for _, v := range s.Points {
		t += v
	}
	return t
}

// Get returns a copy of the series called name; ok is false when there is
// none.
func (h *History) Get(name string) (Series, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.series {
		if s.name == name {
			out := Series{Name: s.name, Kind: s.kind, Points: make([]int64, s.n), End: h.newest}
			for i := range s.n {
				out.Points[i] = s.ring[(s.head-s.n+1+i+Points)%Points]
			}
			return out, true
		}
	}
	return Series{}, false
}
