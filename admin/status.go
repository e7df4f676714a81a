package admin

import (
	"time"

	"ferry/history"
	"ferry/metrics"
)

// Status is what the stats page shows of the process now, as the role's
// main gathers it from its servers. It holds no client's address and no
// secret: a peer is named by its host, never by its URL's path, which may
// be all that keeps an origin's tunnel from strangers.
type Status struct {
	// Phones is what is connected now: an edge's (or standalone's)
	// client connections, an origin's streams.
	Phones int64
	// Sessions is an origin's tunnel sessions with edges, up now.
	Sessions  int64
	Listeners []Listener
	Peers     []Peer
	// Refusals are the clients refused for a cap since start, by cap;
	// those of a cap with none are left out.
	Refusals []Refusal
}

// Listener is one listening port.
type Listener struct {
	Port    int
	Carries string // "chat, TLS", "media", "chat, PROXY header", "tunnel, QUIC", …
	Closed  bool   // closed: the process drains
}

// Peer is one end of tunnel sessions: an origin an edge dials, the origins
// that dial in, an origin's edges.
type Peer struct {
	Name      string        // its host and port, or what dials in; no URL path
	Transport string        // "QUIC", "WebSocket", "WebSocket over TLS"
	RTT       time.Duration // mean of the latest pings; zero when unknown
	Sessions  int           // up and in service; negative when not known
	Note      string        // a line more, may be empty
}

// Refusal is the clients a cap refused.
type Refusal struct {
	Cap   string // the variable that sets it, or what it is
	Limit string // its value, in words; may be empty
	Count int64
}

// Route is a route's reachability as the origin (or standalone) sees it.
type Route struct {
	Name      string // "chat", "media", ...
	Reachable bool
	Since     time.Time // when it last changed; zero if never
	Cause     string    // why not reachable, in words; empty when reachable
}

// The series of the stats page's history (NewHistory).
const (
	SeriesPhones = "phones" // connected, the peak of each minute
	SeriesNew    = "new"    // connections accepted each minute
	SeriesUp     = "up"     // bytes from phones to WhatsApp each minute
	SeriesDown   = "down"   // bytes from WhatsApp to phones each minute
)

// NewHistory makes the history the stats page draws: phones connected
// (phones, read as a gauge), and from m's counters the connections accepted
// (unless newConns is false: an origin accepts none, its edges do) and the
// bytes each way.
func NewHistory(phones func() int64, m *metrics.Metrics, newConns bool) *history.History {
	h := new(history.History)
	h.Add(SeriesPhones, history.Peak, phones)
	if newConns {
		h.Add(SeriesNew, history.Sum, func() int64 { return m.Totals().Accepted })
	}
	h.Add(SeriesUp, history.Sum, func() int64 { return m.Totals().BytesUp })
	h.Add(SeriesDown, history.Sum, func() int64 { return m.Totals().BytesDown })
	return h
}
