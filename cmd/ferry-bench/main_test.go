package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// build builds ferry-bench and ferry into one directory, and returns the
// path of ferry-bench.
func build(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", dir+"/", ".", "../ferry").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "ferry-bench")
}

// TestBadArguments checks that bad arguments and an unwritable -json are
// refused at once, with exit 2, before anything is measured.
func TestBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"-bogus"},
		{"extra"},
		{"-sessions", "-1"},
		{"-ferry", "/bin/true", "-json", filepath.Join(t.TempDir(), "no", "such.json")},
	} {
		var stderr strings.Builder
		if code := run(args, strings.NewReader(""), io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "ferry-bench") {
			t.Errorf("%q: exit %d, want 2: %s", args, code, stderr.String())
		}
	}
}

// TestBenchQuick runs `ferry-bench -quick` end to end, with ferry beside
// it: children start, every figure is measured, and the JSON holds them.
func TestBenchQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the benchmark")
	}
	bin := build(t)
	out := filepath.Join(t.TempDir(), "bench.json")
	cmd := exec.Command(bin, "-quick", "-json", out)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ferry-bench -quick: %v\n%s", err, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), quickNote+"\n") {
		t.Errorf("-quick output does not begin by saying its figures are rough:\n%.300s", stdout.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Paths []struct {
			Name     string  `json:"name"`
			Up1      float64 `json:"up_1_stream_mbps"`
			Down8    float64 `json:"down_8_streams_mbps"`
			SetupP50 float64 `json:"setup_p50_ms"`
		} `json:"paths"`
		Idle []struct {
			Clients string  `json:"clients"`
			EdgeKiB float64 `json:"edge_kib_per_conn"`
		} `json:"idle"`
		LongLink   []struct{ Transport string } `json:"long_link"`
		NonReaders []struct {
			EdgeRSS int64 `json:"edge_rss_peak_kib"`
		} `json:"non_readers"`
		Strangers []struct{ Server, ALPN, Outcome string } `json:"strangers"`
		Sessions  []session                                `json:"sessions"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	// Two steps of idle clients over each transport, and over ws without
	// first-byte routing, and with TLS with and without it.
	if len(r.Paths) != 6 || len(r.Idle) != 12 || r.Idle[7].Clients != "tcp-off" || r.Idle[9].Clients != "tls" || r.Idle[11].Clients != "tls-off" || len(r.LongLink) != 2 || len(r.NonReaders) != 2 {
		t.Fatalf("report: %s", b)
	}
	// The baseline, then h3 and ferry/1 at this ferry's origin.
	if len(r.Strangers) != 3 || r.Strangers[0].Outcome != "handshake, GET 200" || r.Strangers[1].Outcome != "handshake, GET 200" || r.Strangers[2].Outcome != "refused, 0x178" {
		t.Errorf("strangers: %+v", r.Strangers)
	}
	if len(r.Sessions) != 3 {
		t.Errorf("sessions: %+v", r.Sessions)
	}
	for i, tr := range []string{"ws", "wss", "quic"} {
		if s := r.Sessions[min(i, len(r.Sessions)-1)]; s.Transport != tr || s.Ferry != "this" || s.Setups != 5 || s.P50 <= 0 || s.P90 < s.P50 || s.XPrevP50 != 0 {
			t.Errorf("session over %s: %+v", tr, s)
		}
	}
	for _, n := range r.NonReaders {
		if n.EdgeRSS <= 0 {
			t.Errorf("non-reading clients not measured: %+v", n)
		}
	}
	for _, p := range r.Paths {
		if p.Up1 <= 0 || p.Down8 <= 0 || p.SetupP50 <= 0 {
			t.Errorf("path %s not measured: %+v", p.Name, p)
		}
	}
	for _, want := range []string{"throughput", "setup", "session setup", "idle clients", "round trip", "stop reading", "strangers"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
}

// session is a row of the sessions part in the JSON.
type session struct {
	Transport string  `json:"transport"`
	Ferry     string  `json:"ferry"`
	Setups    int     `json:"setups"`
	P50       float64 `json:"p50_ms"`
	P90       float64 `json:"p90_ms"`
	Arrival   float64 `json:"arrival_p50_ms"`
	XPrevP50  float64 `json:"x_previous_p50"`
	XPrevP90  float64 `json:"x_previous_p90"`
}

// TestBenchSessions runs the sessions part alone, with the same ferry as
// the previous binary: a row for each binary over each transport, in
// order, each setup measured, and the ratios on this binary's rows.
func TestBenchSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the benchmark")
	}
	bin := build(t)
	out := filepath.Join(t.TempDir(), "bench.json")
	cmd := exec.Command(bin, "-only", "sessions", "-sessions", "3", "-transports", "ws,quic", "-previous", filepath.Join(filepath.Dir(bin), "ferry"), "-json", out)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ferry-bench -only sessions: %v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Paths    []json.RawMessage `json:"paths"`
		Sessions []session         `json:"sessions"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Paths) != 0 || len(r.Sessions) != 4 {
		t.Fatalf("report: %s", b)
	}
	for i, want := range []struct{ tr, ferry string }{{"ws", "this"}, {"ws", "previous"}, {"quic", "this"}, {"quic", "previous"}} {
		s := r.Sessions[i]
		if s.Transport != want.tr || s.Ferry != want.ferry || s.Setups != 3 || s.P50 <= 0 || s.P90 < s.P50 || s.Arrival < 0 {
			t.Errorf("row %d: %+v, want %s (%s)", i, s, want.tr, want.ferry)
		}
		if ratios := s.XPrevP50 > 0 && s.XPrevP90 > 0; ratios != (want.ferry == "this") {
			t.Errorf("row %d: ratios %v and %v", i, s.XPrevP50, s.XPrevP90)
		}
	}
	for _, want := range []string{"tunnel session setup", "quic (previous)", "×"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
}
