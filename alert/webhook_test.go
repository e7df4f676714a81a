package alert

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// hook is a webhook in the process: it records each POST and answers with
// the next status of its script (200 once the script is done).
type hook struct {
	mu       sync.Mutex
	statuses []int
	got      []Event
	times    []time.Time
}

func (h *hook) RoundTrip(r *http.Request) (*http.Response, error) {
	var e Event
	if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, e)
	h.times = append(h.times, time.Now())
	status := http.StatusOK
	if len(h.statuses) > 0 {
		status, h.statuses = h.statuses[0], h.statuses[1:]
	}
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}

func (h *hook) events() ([]Event, []time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.got...), append([]time.Time(nil), h.times...)
}

// A busy edge goes silent, in fake time: the webhook gets one
// block_suspected, after one retry of a 500, and one block_cleared when
// clients return.
func TestWebhookOnCollapse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hook{statuses: []int{http.StatusInternalServerError}}
		u, _ := url.Parse("https://hooks.example.com/services/T0/B0/secret")
		n := NewNotifier(Notifier{URL: u, Role: "edge", Host: "proxy.example.com", Client: &http.Client{Transport: h}, Backoff: time.Second})
		d := &Detector{OnChange: n.Notify}
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() { d.Run(ctx) })
		wg.Go(func() { n.Run(ctx) })
		defer func() { cancel(); wg.Wait() }()

		// Two busy hours: a new client every 20 s.
		for range 2 * 60 * 3 {
			d.Add()
			time.Sleep(20 * time.Second)
		}
		synctest.Wait()
		if got, _ := h.events(); len(got) != 0 {
			t.Fatalf("busy edge alerted: %+v", got)
		}
		busyEnd := time.Now()
		time.Sleep(16 * time.Minute)
		synctest.Wait()
		got, at := h.events()
		if len(got) != 2 {
			t.Fatalf("webhook got %d posts after 16 silent minutes, want 2 (one 500, one retry): %+v", len(got), got)
		}
		for i, e := range got {
			// The ticks fall on whole minutes from the start: the silence
			// began at the tick after the last client, within a minute.
			if e.Event != "block_suspected" || e.Role != "edge" || e.Host != "proxy.example.com" || e.Usual < 170 || e.Usual > 180 || e.Rate != 0 ||
				e.Since.Before(busyEnd.Add(-time.Minute)) || e.Since.After(busyEnd.Add(time.Minute)) {
				t.Errorf("post %d: %+v, want block_suspected of usual about 180 since about %v", i, e, busyEnd.UTC())
			}
		}
		if d := at[1].Sub(at[0]); d != time.Second {
			t.Errorf("retried after %v, want the backoff, 1s", d)
		}
		if d.Suspected() != 1 {
			t.Error("gauge not 1 while suspected")
		}
		time.Sleep(time.Hour) // silence goes on: nothing more
		synctest.Wait()
		if got, _ := h.events(); len(got) != 2 {
			t.Fatalf("%d posts after an hour more of silence, want 2", len(got))
		}
		for range 15 * 3 {
			d.Add()
			time.Sleep(20 * time.Second)
		}
		synctest.Wait()
		got, _ = h.events()
		if len(got) != 3 || got[2].Event != "block_cleared" {
			t.Fatalf("clients back: %+v, want a third post, block_cleared", got)
		}
		if d.Suspected() != 0 {
			t.Error("gauge still 1")
		}
	})
}

// A webhook that keeps failing gets Attempts posts, spaced by a doubling
// backoff, and then no more.
func TestWebhookGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &hook{statuses: []int{500, 502, 503, 500, 500, 500}}
		u, _ := url.Parse("https://hooks.example.com/x")
		n := NewNotifier(Notifier{URL: u, Client: &http.Client{Transport: h}, Attempts: 3, Backoff: time.Second})
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() { n.Run(ctx) })
		defer func() { cancel(); wg.Wait() }()
		n.Notify(State{Suspected: true})
		time.Sleep(time.Hour)
		synctest.Wait()
		got, at := h.events()
		if len(got) != 3 {
			t.Fatalf("%d posts, want 3", len(got))
		}
		if at[1].Sub(at[0]) != time.Second || at[2].Sub(at[1]) != 2*time.Second {
			t.Errorf("posts at %v", at)
		}
	})
}

// A slow webhook is abandoned after Timeout, and Notify never blocks the
// detector: events beyond the queue are dropped.
func TestWebhookTimeoutAndQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var posts sync.WaitGroup
		slow := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			<-r.Context().Done() // a webhook that never answers
			return nil, r.Context().Err()
		})
		u, _ := url.Parse("https://hooks.example.com/x")
		n := NewNotifier(Notifier{URL: u, Client: &http.Client{Transport: slow}, Attempts: 1, Timeout: 3 * time.Second})
		for range 10 {
			n.Notify(State{Suspected: true}) // must not block with no Run
		}
		ctx, cancel := context.WithCancel(t.Context())
		posts.Go(func() { n.Run(ctx) })
		time.Sleep(time.Minute)
		synctest.Wait()
		if len(n.queue) != 0 {
			t.Errorf("%d events still queued after a minute of 3 s timeouts", len(n.queue))
		}
		cancel()
		posts.Wait()
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Over real HTTPS on loopback: the POST's method, type and document.
func TestWebhookOverTLS(t *testing.T) {
	got := make(chan Event, 1)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e Event
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&e) != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		got <- e
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL + "/hook?token=secret")
	n := NewNotifier(Notifier{URL: u, Role: "edge", Host: "proxy.example.com", Client: srv.Client()})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	since := time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC)
	n.Notify(State{Suspected: true, Since: since, Rate: 3, Usual: 420})
	e := <-got
	if want := (Event{Event: "block_suspected", Role: "edge", Host: "proxy.example.com", Since: since, Rate: 3, Usual: 420}); e != want {
		t.Fatalf("got %+v, want %+v", e, want)
	}
}

// The errors logged never quote the URL, whose path and query may be the
// webhook's secret.
func TestWebhookErrorsHideURL(t *testing.T) {
	u, _ := url.Parse("https://127.0.0.1:1/services/SECRETPATH?token=SECRETQ")
	n := NewNotifier(Notifier{URL: u, Timeout: time.Second})
	err := n.post(t.Context(), []byte("{}"))
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("error %v", err)
	}
}
