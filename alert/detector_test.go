package alert

import (
	"testing"
	"time"
	"unsafe"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// feed steps d through minutes minutes from *now, n new clients each.
func feed(d *Detector, now *time.Time, minutes int, n uint32) {
	for range minutes {
		*now = now.Add(time.Minute)
		d.step(*now, n)
	}
}

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func TestBusyThenSilent(t *testing.T) {
	var changes []State
	d := &Detector{MinBusy: 30, OnChange: func(s State) { changes = append(changes, s) }}
	now := t0
	feed(d, &now, 60, 1) // 60 an hour: busy
	feed(d, &now, 14, 0)
	if len(changes) != 0 {
		t.Fatalf("suspected after 14 silent minutes: %+v", changes)
	}
	feed(d, &now, 1, 0)
	if len(changes) != 1 || !changes[0].Suspected || d.Suspected() != 1 {
		t.Fatalf("after 15 silent minutes: %+v, gauge %v", changes, d.Suspected())
	}
	if want := now.Add(-15 * time.Minute); !changes[0].Since.Equal(want) || changes[0].Usual != 60 {
		t.Errorf("state %+v, want since %v and usual 60", changes[0], want)
	}
	feed(d, &now, 120, 0) // silence goes on: no second alert
	if len(changes) != 1 {
		t.Fatalf("silence raised %d changes, want 1", len(changes))
	}
	feed(d, &now, 1, 1) // one scanner: not back yet
	if len(changes) != 1 {
		t.Fatalf("one new client cleared it: %+v", changes)
	}
	feed(d, &now, 2, 1)
	if len(changes) != 2 || changes[1].Suspected || d.Suspected() != 0 {
		t.Fatalf("clients back: %+v, gauge %v", changes, d.Suspected())
	}
}

func TestQuietEdgeNeverSuspected(t *testing.T) {
	d := &Detector{MinBusy: 30, OnChange: func(s State) { t.Errorf("changed: %+v", s) }}
	now := t0
	// 29 in the busy hour, then silence: too quiet to mean anything.
	feed(d, &now, 29, 1)
	feed(d, &now, 31, 0)
	feed(d, &now, 60, 0)
	// Silence from the start: nothing to compare with.
	d = &Detector{OnChange: func(s State) { t.Errorf("changed: %+v", s) }}
	now = t0
	feed(d, &now, 300, 0)
}

func TestNotBeforeAHourOfHistory(t *testing.T) {
	d := &Detector{MinBusy: 1, OnChange: func(s State) { t.Errorf("changed: %+v", s) }}
	now := t0
	// 50 new clients in the first minute, then 15 silent ones: the minute
	// history is not a full hour and a quarter yet.
	feed(d, &now, 1, 50)
	feed(d, &now, 15, 0)
}

// hour feeds one hour of perHour new clients, spread evenly over its
// minutes.
func hour(d *Detector, now *time.Time, perHour int) {
	for i := range 60 {
		feed(d, now, 1, uint32((i+1)*perHour/60-i*perHour/60))
	}
}

// days feeds whole days at perHour new clients an hour.
func days(d *Detector, now *time.Time, n int, perHour int) {
	for range n * 24 {
		hour(d, now, perHour)
	}
}

func TestCollapseAgainstUsual(t *testing.T) {
	var changes []State
	d := &Detector{MinBusy: 30, OnChange: func(s State) { changes = append(changes, s) }}
	now := t0
	days(d, &now, 3, 600) // 10 a minute for 3 days
	if len(changes) != 0 {
		t.Fatalf("steady traffic raised %+v", changes)
	}
	// Down to 1 every 2 minutes (30 an hour, 5% of usual): never 15 silent
	// minutes, but under a tenth of the same hour's mean.
	var at time.Time
	for i := 0; i < 120 && len(changes) == 0; i++ {
		feed(d, &now, 1, uint32(i%2))
		at = now
	}
	if len(changes) != 1 || !changes[0].Suspected {
		t.Fatalf("collapse to 5%%: %+v", changes)
	}
	if got := changes[0]; got.Usual != 600 || got.Rate >= 60 || !got.Since.Equal(at.Add(-time.Hour)) {
		t.Errorf("state %+v", got)
	}
	feed(d, &now, 15, 10)
	if len(changes) != 2 || changes[1].Suspected {
		t.Fatalf("back to 10 a minute: %+v", changes)
	}
}

func TestCollapseNeedsThreeDays(t *testing.T) {
	var changes []State
	d := &Detector{MinBusy: 30, OnChange: func(s State) { changes = append(changes, s) }}
	now := t0
	days(d, &now, 2, 600)
	feed(d, &now, 120, 0)
	// With only 2 days, only the busy-to-silent rule applies: it fires.
	if len(changes) != 1 || changes[0].Usual != 600 || !changes[0].Since.Equal(now.Add(-120*time.Minute)) {
		t.Fatalf("%+v", changes)
	}
	changes = nil
	d = &Detector{MinBusy: 30, OnChange: func(s State) { changes = append(changes, s) }}
	now = t0
	days(d, &now, 2, 600)
	// 30 an hour (5%), never silent for 15 minutes: nothing, for want of
	// history.
	for i := range 180 {
		feed(d, &now, 1, uint32(i%2))
	}
	if len(changes) != 0 {
		t.Fatalf("raised with 2 days of history: %+v", changes)
	}
}

func TestUsualFollowsTheHour(t *testing.T) {
	// Busy by day (600 an hour from 08:00 to 20:00), quiet by night (6 an
	// hour): the night is usual, not a collapse.
	d := &Detector{MinBusy: 30, OnChange: func(s State) { t.Errorf("changed at %v: %+v", s.Since, s) }}
	now := t0
	for range 5 * 24 {
		per := 6
		if h := now.Hour(); h >= 8 && h < 20 {
			per = 600
		}
		hour(d, &now, per)
	}
}

func TestHistoryWrapsAfterAGap(t *testing.T) {
	d := &Detector{MinBusy: 30}
	now := t0
	days(d, &now, 8, 600)
	// The machine slept for 9 days: the hours it missed count nothing,
	// so there is no usual to compare with.
	now = now.Add(9 * 24 * time.Hour)
	d.step(now, 0)
	d.mu.Lock()
	u, n := d.usual(now)
	d.mu.Unlock()
	if u != 0 || n != 7 {
		t.Fatalf("usual %v over %d days after the gap, want 0 over 7", u, n)
	}
}

func TestClockJump(t *testing.T) {
	d := &Detector{}
	now := t0
	days(d, &now, 1, 600)
	now = now.AddDate(30, 0, 0) // must not step through 30 years of hours
	d.step(now, 5)
	d.mu.Lock()
	defer d.mu.Unlock()
	var total uint32
	for _, v := range d.hours {
		total += v
	}
	if total != 5 {
		t.Errorf("%d new clients in the hours after the jump, want the 5 of its minute", total)
	}
}

// The README says the history costs about 1.2 KB (1,200 bytes today).
func TestDetectorSize(t *testing.T) {
	if n := unsafe.Sizeof(Detector{}); n > 1280 {
		t.Errorf("a Detector takes %d bytes, more than the README's 1.2 KB or so", n)
	} else {
		t.Logf("a Detector takes %d bytes", n)
	}
}
