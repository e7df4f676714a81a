package admin

import (
	"context"
	"errors"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"ferry/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

// TestEndpoints checks /healthz, /readyz as readiness changes, /metrics, the
// stats page with its share link, and the QR code image.
func TestEndpoints(t *testing.T) {
	m := metrics.New("edge", "test")
	m.Listener("tcp://127.0.0.1:5222/chat", "chat").Accepted()
	var up atomic.Bool
	const link = "https://wa.me/proxy?host=proxy.example&chatPort=443&mediaPort=587&chatTLS=1"
	s := &Server{Role: "edge", Version: "test", Metrics: m, Link: link, Log: slog.New(slog.DiscardHandler),
		Ready: func() error {
			if !up.Load() {
				return errors.New("no tunnel session up")
			}
			return nil
		}}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	if code, _, body := get(t, ts.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _, body := get(t, ts.URL+"/readyz"); code != 503 || !strings.Contains(body, "no tunnel session up") {
		t.Errorf("/readyz with no session: %d %q", code, body)
	}
	up.Store(true)
	if code, _, _ := get(t, ts.URL+"/readyz"); code != 200 {
		t.Errorf("/readyz with a session: %d", code)
	}
	code, _, body := get(t, ts.URL+"/metrics")
	for _, want := range []string{`ferry_build_info{role="edge",version="test"} 1`, `ferry_connections_accepted_total{listener="tcp://127.0.0.1:5222/chat",route="chat"} 1`, "go_goroutines", "process_"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	code, ctype, body := get(t, ts.URL+"/")
	for _, want := range []string{`id="phones">0<`, `src="/qr.png"`, "https://wa.me/proxy?host=proxy.example&amp;chatPort=443"} {
		if code != 200 || !strings.HasPrefix(ctype, "text/html") || !strings.Contains(body, want) {
			t.Errorf("stats page lacks %q", want)
		}
	}
	resp, err := http.Get(ts.URL + "/qr.png")
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(resp.Body)
	resp.Body.Close()
	if err != nil || img.Bounds().Dx() < 100 {
		t.Errorf("QR code: %v", err)
	}
	if code, _, _ := get(t, ts.URL+"/elsewhere"); code != 404 {
		t.Errorf("unknown path: %d", code)
	}
}

// TestServeSamples checks that Serve samples the history while it serves,
// and stops sampling when it returns (goleak checks the goroutine).
func TestServeSamples(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var phones atomic.Int64
	phones.Store(3)
	m := metrics.New("standalone", "test")
	s := &Server{Role: "standalone", Version: "test", Metrics: m, Log: slog.New(slog.DiscardHandler),
		History: NewHistory(phones.Load, m, true)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- s.Serve(ctx, ln) }()
	_, _, body := get(t, "http://"+ln.Addr().String()+"/")
	if !strings.Contains(body, "peak 3 at once") || !strings.Contains(body, "started under a minute ago") {
		t.Errorf("the page of a history just started:\n%s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}
