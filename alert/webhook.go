package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Event is the JSON document a webhook receives, e.g.
//
//	{"event":"block_suspected","role":"edge","host":"proxy.example.com",
//	 "since":"2026-12-01T17:00:00Z","rate":0,"usual":420}
//
// event is block_suspected or block_cleared; rate and usual are new clients
// an hour (the last hour's, and the one the rule compared it with).
type Event struct {
	Event string    `json:"event"`
	Role  string    `json:"role"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
	Rate  float64   `json:"rate"`
	Usual float64   `json:"usual"`
}

// RouteEvent is the JSON document a webhook receives when an origin (or
// standalone) loses a route to WhatsApp or gets it back, e.g.
//
//	{"event":"whatsapp_unreachable","role":"origin","host":"origin-1",
//	 "route":"chat","since":"2026-12-01T17:00:00Z",
//	 "error":"route chat: dial g.whatsapp.net:5222: i/o timeout"}
//
// event is whatsapp_unreachable or whatsapp_reachable (without since and
// error).
type RouteEvent struct {
	Event string    `json:"event"`
	Role  string    `json:"role"`
	Host  string    `json:"host"`
	Route string    `json:"route"`
	Since time.Time `json:"since,omitzero"`
	Error string    `json:"error,omitempty"`
}

// Defaults of Notifier's fields.
const (
	DefaultAttempts = 4
	DefaultBackoff  = 5 * time.Second
	DefaultTimeout  = 10 * time.Second
)

// queueSize bounds the events waiting for the webhook: a suspicion and its
// clearing, twice over. Beyond that the newest event is dropped (and
// logged) rather than the queue growing while a webhook stays down.
const queueSize = 4

// Notifier POSTs events to a webhook on a goroutine of its own, so that
// neither the detector nor any client waits for it.
type Notifier struct {
	URL    *url.URL // the webhook; never logged but by its host
	Role   string   // the event's role
	Host   string   // the event's host: FERRY_EDGE_PUBLIC_HOST or the hostname
	Client *http.Client
	// Attempts is how many times one event is sent before it is given up;
	// zero means DefaultAttempts. Backoff is the wait after the first
	// failure, doubled after each next one; zero means DefaultBackoff.
	// Timeout bounds each attempt; zero means DefaultTimeout.
	Attempts int
	Backoff  time.Duration
	Timeout  time.Duration
	Log      *slog.Logger // nil logs nothing

	queue chan queued
}

// queued is an event waiting for the webhook: its name and its document.
type queued struct {
	event string
	doc   any
}

// NewNotifier returns a Notifier for n's fields, ready for Notify and Run.
func NewNotifier(n Notifier) *Notifier {
	n.queue = make(chan queued, queueSize)
	return &n
}

// Notify queues the event for s without blocking; Run sends it.
func (n *Notifier) Notify(s State) {
	e := Event{Event: "block_cleared", Role: n.Role, Host: n.Host, Since: s.Since.UTC(), Rate: s.Rate, Usual: s.Usual}
	if s.Suspected {
		e.Event = "block_suspected"
	} else {
		e.Since = time.Time{}
	}
	n.enqueue(queued{e.Event, e})
}

// NotifyRoute queues, without blocking, the event of a route that went
// down (err, the latest failure, not nil; since, when it stopped
// answering) or came back (err nil).
func (n *Notifier) NotifyRoute(route string, since time.Time, err error) {
	e := RouteEvent{Event: "whatsapp_reachable", Role: n.Role, Host: n.Host, Route: route}
	if err != nil {
		e.Event, e.Since, e.Error = "whatsapp_unreachable", since.UTC(), err.Error()
	}
	n.enqueue(queued{e.Event, e})
}

func (n *Notifier) enqueue(q queued) {
	select {
	case n.queue <- q:
	default:
		n.log().Warn("alert webhook: queue full, event dropped", "event", q.event, "webhook_host", n.URL.Host)
	}
}

// Run sends the queued events, one at a time, until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case q := <-n.queue:
			n.send(ctx, q)
		}
	}
}

func (n *Notifier) send(ctx context.Context, q queued) {
	body, err := json.Marshal(q.doc)
	if err != nil {
		panic(err) // an event always marshals
	}
	attempts := n.Attempts
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	wait := n.Backoff
	if wait <= 0 {
		wait = DefaultBackoff
	}
	for i := 1; ; i++ {
		err := n.post(ctx, body)
		if err == nil {
			return
		}
		if i >= attempts || ctx.Err() != nil {
			n.log().Warn("alert webhook: event not delivered", "event", q.event, "webhook_host", n.URL.Host, "attempts", i, "err", err)
			return
		}
		n.log().Debug("alert webhook: retrying", "event", q.event, "webhook_host", n.URL.Host, "attempt", i, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait *= 2
	}
}

// post sends body once. Its errors never hold the URL: its path or query
// may be the webhook's secret (Slack's and Discord's are).
func (n *Notifier) post(ctx context.Context, body []byte) error {
	timeout := n.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("making the request: %w", withoutURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	c := n.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("posting: %w", withoutURL(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) // lets the connection be reused
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("posting: status %s", resp.Status)
	}
	return nil
}

// withoutURL unwraps a *url.Error, whose text quotes the whole URL.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (n *Notifier) log() *slog.Logger {
	if n.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return n.Log
}
