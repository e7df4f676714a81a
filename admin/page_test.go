package admin

import (
	"io"
	"log/slog"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"ferry/history"
	"ferry/metrics"
)

// dayOfPhones fills a stats page's history with minutes of a plausible
// day, ending now: phones come and go with the hour, a busy evening, and
// a short outage three hours ago. It returns the phones connected at the
// end.
func dayOfPhones(m *metrics.Metrics, minutes int) (*history.History, int64) {
	var phones int64
	h := NewHistory(func() int64 { return phones }, m, true)
	l := m.Listener("tls://:443/chat", "chat")
	up, down := l.Bytes()
	end := time.Now().Truncate(history.Step)
	for i := range minutes {
		at := end.Add(time.Duration(i-minutes+1) * history.Step)
		hour := float64(at.Hour()) + float64(at.Minute())/60
		p := 180 + 140*math.Sin((hour-14)/24*2*math.Pi) + 25*math.Sin(float64(i)/7)
		if minutes-i > 170 && minutes-i < 190 {
			p = 0 // the outage
		}
		phones = int64(max(p, 0))
		for range phones / 12 {
			l.Accepted()
			l.Closed()
		}
		down.Add(float64(phones * 41_000))
		up.Add(float64(phones * 9_500))
		h.Sample(at)
	}
	return h, phones
}

// statusOf is an edge's status with a listener of each kind and two
// origins.
func statusOf(phones int64) Status {
	return Status{
		Phones: phones,
		Listeners: []Listener{
			{Port: 443, Carries: "chat, TLS"}, {Port: 5222, Carries: "chat"}, {Port: 587, Carries: "media"},
			{Port: 8443, Carries: "chat, TLS, PROXY header"}, {Port: 7777, Carries: "media", Closed: true},
		},
		Peers: []Peer{
			{Name: "origin.example:443", Transport: "WebSocket over TLS", RTT: 38 * time.Millisecond, Sessions: 2, Note: "dialled at 203.0.113.7:443"},
			{Name: "origin-b.example:8443", Transport: "QUIC", Note: "redialling"},
		},
		Refusals: []Refusal{{Cap: "FERRY_EDGE_MAX_CONNS", Limit: "27,500 at once", Count: 12345}, {Cap: "fair share", Count: 0}},
	}
}

// TestPage checks the stats page's figures: phones now, the graphs with
// their labels, listeners, peers, refusals (zeros left out), the
// routes and the origin's note, with names escaped, and no raw metric.
func TestPage(t *testing.T) {
	m := metrics.New("edge", "test")
	h, phones := dayOfPhones(m, history.Points)
	st := statusOf(1234)
	st.Peers[1].Name = "<b>origin</b>"
	s := &Server{Role: "edge", Version: "test", Metrics: m, Log: slog.New(slog.DiscardHandler), History: h,
		Status: func() Status { return st },
		Routes: func() []Route {
			return []Route{{Name: "chat", Reachable: true, Since: time.Now().Add(-2 * time.Hour)},
				{Name: "media", Since: time.Now().Add(-3 * time.Minute), Cause: "every alternative failed: connection refused"}}
		},
		OriginNote: func() string { return "the origin cannot reach WhatsApp (media)" },
	}
	_, body := render(t, s)
	for _, want := range []string{
		`<meta http-equiv="refresh" content="30">`, `name="viewport"`,
		`id="phones">1,234<`, "phones connected now",
		"24 h ago", ">now<", "Phones connected", "New connections a minute", "Traffic a minute", "to phones: ", "from phones: ",
		">443<", "chat, TLS", "PROXY header", "closed: draining", "listening",
		"origin.example:443", "WebSocket over TLS", "38 ms round trip", "2 up", "QUIC", "none up", "redialling",
		"&lt;b&gt;origin&lt;/b&gt;",
		"FERRY_EDGE_MAX_CONNS", "12,345 refused",
		"reachable for 2 h", "not reachable for 3 min", "every alternative failed",
		`class="note" role="alert">the origin cannot reach WhatsApp (media)<`,
		`href="/metrics"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, not := range []string{"<b>origin", "fair share", "ferry_", "tls://:443/chat", "started "} {
		if strings.Contains(body, not) {
			t.Errorf("the page holds %q", not)
		}
	}
	if strings.Count(body, "<svg") != 3 || strings.Count(body, `<path class="l1"`) != 3 || strings.Count(body, `<path class="l2"`) != 1 {
		t.Errorf("graphs: %d svg", strings.Count(body, "<svg"))
	}
	if p, _ := h.Get(SeriesPhones); !strings.Contains(body, "peak "+count(p.Max())+" at once") || phones == 0 {
		t.Errorf("the page lacks the phones' peak %d", p.Max())
	}
}

// TestPageBare checks the page of a process just started, with no status,
// history or routes: no empty sections, no graph, and the figures it has.
func TestPageBare(t *testing.T) {
	s := &Server{Role: "standalone", Version: "test", Metrics: metrics.New("standalone", "test"), Log: slog.New(slog.DiscardHandler)}
	_, body := render(t, s)
	for _, not := range []string{"<svg", "Listeners", "Tunnels", "WhatsApp</h2>", "Refused", "Share", "role=\"alert\""} {
		if strings.Contains(body, not) {
			t.Errorf("the bare page holds %q", not)
		}
	}
	if !strings.Contains(body, `id="phones">0<`) || !strings.Contains(body, "pill ok\">ready") {
		t.Errorf("bare page:\n%s", body)
	}
	// A history of three minutes says so.
	s.History, _ = dayOfPhones(metrics.New("standalone", "test"), 3)
	s.Routes = func() []Route { return nil }
	if _, body = render(t, s); !strings.Contains(body, "started 2 min ago") || !strings.Contains(body, "Not tried yet") || strings.Contains(body, "peak 0") {
		t.Errorf("a 3 minutes' history:\n%s", body)
	}
}

// TestPageOrigin checks an origin's headline: streams and edge sessions.
func TestPageOrigin(t *testing.T) {
	m := metrics.New("origin", "test")
	var streams int64 = 7
	s := &Server{Role: "origin", Version: "test", Metrics: m, Log: slog.New(slog.DiscardHandler),
		History: NewHistory(func() int64 { return streams }, m, false),
		Status:  func() Status { return Status{Phones: streams, Sessions: 4} }}
	s.History.Sample(time.Now())
	_, body := render(t, s)
	for _, want := range []string{`id="phones">7<`, "phones&#39; connections through edges now", "4 tunnel sessions with edges", "Connections through edges"} {
		if !strings.Contains(body, want) {
			t.Errorf("the origin's page lacks %q", want)
		}
	}
	if strings.Contains(body, "New connections") {
		t.Error("an origin accepts no connections of its own: no graph of them")
	}
}

func render(t testing.TB, s *Server) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("stats page: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script") {
		t.Errorf("Content-Security-Policy: %q", csp)
	}
	return rec.Code, string(body)
}

// BenchmarkPage renders the stats page with a full 24 h history, against
// two baselines of the same run: the page of a process with no history and
// no status, and /metrics, the Prometheus text of the same figures.
func BenchmarkPage(b *testing.B) {
	full := func() *Server {
		m := metrics.New("edge", "test")
		h, phones := dayOfPhones(m, history.Points)
		return &Server{Role: "edge", Version: "test", Metrics: m, Log: slog.New(slog.DiscardHandler), History: h,
			Link:   "https://wa.me/proxy?host=proxy.example&chatPort=443&mediaPort=587&chatTLS=1",
			Status: func() Status { return statusOf(phones) }}
	}
	for _, bc := range []struct {
		name, path string
		s          *Server
	}{
		{"full", "/", full()},
		{"bare", "/", &Server{Role: "edge", Version: "test", Metrics: metrics.New("edge", "test"), Log: slog.New(slog.DiscardHandler)}},
		{"metrics", "/metrics", full()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := bc.s.Handler()
			b.ReportAllocs()
			var n int
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", bc.path, nil))
				n = rec.Body.Len()
			}
			b.ReportMetric(float64(n), "bytes/page")
		})
	}
}
