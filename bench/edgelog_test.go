package bench

import (
	"strings"
	"testing"
	"time"
)

// A session's setup is timed by the edge's own records, whatever the
// chunks its stderr arrives in; done closes at the session or a failed
// dial, and anything else leaves the setup unmeasured, saying why.
func TestEdgeLog(t *testing.T) {
	const (
		memory   = `{"time":"2026-12-01T15:48:18.540574587Z","level":"INFO","msg":"memory limit","mib":18078}` + "\n"
		starting = `{"time":"2026-12-01T15:48:18.542409258Z","level":"INFO","msg":"ferry edge starting","config":{"FERRY_EDGE_POOL":"1"}}` + "\n"
		up       = `{"time":"2026-12-01T15:48:18.547482946Z","level":"INFO","msg":"tunnel up","peer":"quic://127.0.0.1:1"}` + "\n"
		upLater  = `{"time":"2026-12-01T15:48:19.547482946Z","level":"INFO","msg":"tunnel up","peer":"quic://127.0.0.1:1"}` + "\n"
		failed   = `{"time":"2026-12-01T15:48:18.547482946Z","level":"WARN","msg":"tunnel dial failed","peer":"quic://127.0.0.1:1","err":"quic dial: timeout"}` + "\n"
		text     = "panic: something not JSON\n"
	)
	const setup = 5073688 * time.Nanosecond // up's time minus starting's
	for _, c := range []struct {
		name   string
		chunks []string
		done   bool
		want   time.Duration // zero: no setup
		err    string
	}{
		{"lines whole", []string{memory, starting, up}, true, setup, ""},
		{"one chunk", []string{memory + starting + up}, true, setup, ""},
		{"cut mid-line", []string{memory + starting[:17], starting[17:] + up[:40], up[40:]}, true, setup, ""},
		{"first session counts", []string{starting, up, upLater}, true, setup, ""},
		{"not JSON between", []string{starting, text, up}, true, setup, ""},
		{"up before starting", []string{up, starting}, false, 0, `no "tunnel up" line`},
		{"no starting", []string{memory, text}, false, 0, `no "ferry edge starting" line`},
		{"line not ended", []string{starting, strings.TrimSuffix(up, "\n")}, false, 0, `no "tunnel up" line`},
		{"dial failed", []string{starting, failed, upLater}, true, 0, "tunnel dial failed: quic dial: timeout"},
		{"times do not advance", []string{starting, strings.Replace(up, "18.547482946", "18.542409258", 1)}, true, 0, "do not advance"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newEdgeLog()
			for _, ch := range c.chunks {
				if n, err := l.Write([]byte(ch)); n != len(ch) || err != nil {
					t.Fatalf("Write: %d, %v", n, err)
				}
			}
			select {
			case <-l.done:
				if !c.done {
					t.Error("done, want not")
				}
			default:
				if c.done {
					t.Error("not done")
				}
			}
			got, err := l.result()
			if c.err == "" && (err != nil || got.logged != c.want || got.arrived < 0) {
				t.Errorf("result: %+v, %v; want %v", got, err, c.want)
			}
			if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Errorf("result: %+v, %v; want an error with %q", got, err, c.err)
			}
		})
	}
}

// An error quotes the latest lines only, each cut, with the one not yet
// ended.
func TestEdgeLogText(t *testing.T) {
	l := newEdgeLog()
	for i := range 2 * tailLines {
		l.Write([]byte(strings.Repeat(string(rune('a'+i)), 2*tailChars) + "\n"))
	}
	l.Write([]byte("partial"))
	lines := strings.Split(l.text(), "\n")
	if len(lines) != tailLines+1 || lines[0] != strings.Repeat(string(rune('a'+tailLines)), tailChars) || lines[tailLines] != "partial" {
		t.Errorf("text: %q", lines)
	}
}

// Arrival stamps are the times Write is called: two lines written apart
// are as far apart as the writes, and two in one write are at one time.
func TestEdgeLogArrival(t *testing.T) {
	const starting = `{"time":"2026-12-01T15:48:18.542409258Z","msg":"ferry edge starting"}` + "\n"
	const up = `{"time":"2026-12-01T15:48:18.547482946Z","msg":"tunnel up"}` + "\n"
	l := newEdgeLog()
	before := time.Now()
	l.Write([]byte(starting))
	l.Write([]byte(up))
	got, err := l.result()
	if err != nil || got.arrived < 0 || got.arrived > time.Since(before) {
		t.Errorf("apart: %+v, %v", got, err)
	}
	l = newEdgeLog()
	l.Write([]byte(starting + up))
	if got, err := l.result(); err != nil || got.arrived != 0 {
		t.Errorf("together: %+v, %v", got, err)
	}
}
