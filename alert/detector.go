// Package alert notices when an edge's new clients stop coming, which is
// what a block by IP looks like from the inside: the edge stays healthy,
// its tunnel stays up, and phones simply no longer reach it.
//
// The rule (Detector.step) is evaluated once a minute on the history of new
// clients:
//
//   - busy to silent: the last 15 minutes had no new client, after the hour
//     before them had at least MinBusy;
//   - collapse against the usual: with at least 3 days of history, the last
//     hour had fewer than a tenth of the mean of the same hour on the
//     previous days (up to 7), and that mean is at least MinBusy.
//
// A suspicion clears when the last 15 minutes bring new clients at a fifth
// of the usual hourly rate or more (at least 2): twice the rate that
// raised it, so that a few scanners' connections do not make it flap.
package alert

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// The history's shape. One minute ring long enough for the busy-to-silent
// rule (15 silent minutes after a busy hour), and one ring of hourly counts
// of 8 days, so that the same hour 7 days ago is never the slot being
// filled now. (75+192)×4 bytes of counts, 1,200 bytes with the rest of a
// Detector (TestDetectorSize).
const (
	silentMinutes = 15
	busyMinutes   = 60
	minuteSlots   = silentMinutes + busyMinutes
	historyDays   = 7
	hourSlots     = (historyDays + 1) * 24
	minDays       = 3
)

// DefaultMinBusy is Detector.MinBusy's default: new clients an hour below
// which an edge is too quiet for its silence to mean anything.
const DefaultMinBusy = 30

// State is a suspicion, as the gauge and the webhook tell it.
type State struct {
	Suspected bool
	Since     time.Time // when the new clients stopped (the window's start)
	Rate      float64   // new clients in the last hour
	Usual     float64   // new clients an hour the rule compared with
}

// Detector keeps an edge's rate of new clients and tells OnChange when a
// block is suspected and when the suspicion clears. The zero value is ready
// once Run runs; Add may be called from any goroutine at any time.
type Detector struct {
	// MinBusy is how many new clients an hour make an edge busy enough to
	// be watched; zero means DefaultMinBusy.
	MinBusy int
	// OnChange is called, on Run's goroutine, each time Suspected flips. It
	// must not block for long (Notifier.Notify does not).
	OnChange func(State)
	Log      *slog.Logger // nil logs nothing

	pending atomic.Uint32 // new clients since the last minute's step

	// Owned by Run's goroutine, read by State under mu.
	mu      sync.Mutex
	start   time.Time // the first step
	minutes [minuteSlots]uint32
	nmin    int // minutes stepped, to know whether minutes is full
	hours   [hourSlots]uint32
	hour    int64 // the hour (Unix hours) last added to
	state   State
}

// Add counts one new client. It costs one atomic add: it runs on the
// accept path.
func (d *Detector) Add() { d.pending.Add(1) }

// Suspected returns 1 while a block is suspected, else 0: the gauge
// ferry_edge_block_suspected.
func (d *Detector) Suspected() float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state.Suspected {
		return 1
	}
	return 0
}

// Run steps the history every minute until ctx ends.
func (d *Detector) Run(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			d.step(now, d.pending.Swap(0))
		}
	}
}

// step adds the minute ending at now with n new clients and applies the
// rule.
func (d *Detector) step(now time.Time, n uint32) {
	d.mu.Lock()
	if d.start.IsZero() {
		d.start = now.Add(-time.Minute)
	}
	copy(d.minutes[:], d.minutes[1:])
	d.minutes[minuteSlots-1] = n
	d.nmin++
	// The minute that ended at now belongs to the hour it started in.
	h := hourOf(now.Add(-time.Minute))
	if d.hour == 0 {
		d.hour = h
	}
	// Hours with no step (a suspended machine) count nothing, and the slots
	// they reuse are emptied of what they held 8 days ago.
	if h-d.hour > hourSlots {
		// A clock set years ahead: empty each slot once, not once an hour.
		d.hour = h - hourSlots
	}
	for ; d.hour < h; d.hour++ {
		d.hours[(d.hour+1)%hourSlots] = 0
	}
	d.hours[h%hourSlots] += n
	next, changed := d.rule(now)
	if changed {
		d.state = next
	}
	log := d.Log
	d.mu.Unlock()
	if !changed {
		return
	}
	if log != nil {
		if next.Suspected {
			log.Warn("new clients stopped coming: the edge's address may be blocked",
				"since", next.Since.UTC().Format(time.RFC3339), "rate_per_hour", next.Rate, "usual_per_hour", next.Usual)
		} else {
			log.Info("new clients are back", "rate_per_hour", next.Rate, "usual_per_hour", next.Usual)
		}
	}
	if d.OnChange != nil {
		d.OnChange(next)
	}
}

// rule returns the state the history calls for at now, and whether it
// differs from the current one. d.mu is held.
func (d *Detector) rule(now time.Time) (State, bool) {
	minBusy := d.MinBusy
	if minBusy <= 0 {
		minBusy = DefaultMinBusy
	}
	silent := sum(d.minutes[busyMinutes:])
	lastHour := sum(d.minutes[silentMinutes:])
	usual, days := d.usual(now)
	if d.state.Suspected {
		// The usual the suspicion was raised against, so that a quiet night
		// after it does not lower the bar.
		if silent >= 2 && float64(silent)*4 >= d.state.Usual/5 {
			return State{Rate: float64(lastHour), Usual: d.state.Usual}, true
		}
		return d.state, false
	}
	if d.nmin >= minuteSlots && silent == 0 {
		if before := sum(d.minutes[:busyMinutes]); before >= minBusy {
			return State{Suspected: true, Since: now.Add(-silentMinutes * time.Minute), Rate: 0, Usual: float64(before)}, true
		}
	}
	if d.nmin >= busyMinutes && days >= minDays && usual >= float64(minBusy) && float64(lastHour) < usual/10 {
		return State{Suspected: true, Since: now.Add(-busyMinutes * time.Minute), Rate: float64(lastHour), Usual: usual}, true
	}
	return d.state, false
}

// usual returns the mean count of the hour that held the last hour's middle
// on each of the previous days (up to 7) that the history covers, and how
// many days that is.
func (d *Detector) usual(now time.Time) (float64, int) {
	mid := now.Add(-busyMinutes / 2 * time.Minute)
	var total, days int
	for day := 1; day <= historyDays; day++ {
		t := mid.Add(-time.Duration(day) * 24 * time.Hour)
		// Only an hour seen from its start: the first one is partial.
		if t.Truncate(time.Hour).Before(d.start) {
			break
		}
		total += int(d.hours[hourOf(t)%hourSlots])
		days++
	}
	if days == 0 {
		return 0, 0
	}
	return float64(total) / float64(days), days
}

func hourOf(t time.Time) int64 { return t.Unix() / 3600 }

func sum(s []uint32) int {
	var n int
	for _, v := range s {
		n += int(v)
	}
	return n
}
