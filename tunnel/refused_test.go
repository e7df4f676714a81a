package tunnel

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// lockedBuffer is a log's output that a timer's goroutine may write to.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the lines written so far at level (DEBUG, INFO), and
// forgets every line.
func (l *lockedBuffer) lines(level string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.b.String(), "\n") {
		if strings.Contains(line, "level="+level) {
			out = append(out, line)
		}
	}
	return out
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) reset() {
	l.mu.Lock()
	l.b.Reset()
	l.mu.Unlock()
}

// TestRefusalsSummary refuses a stranger's handshakes by the thousand and
// checks that each is a debug line without the stranger's address, and
// that the info lines are one summary a minute at most, with the count.
func TestRefusalsSummary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out lockedBuffer
		r := &refusals{log: slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})), transport: "quic"}
		stranger := netip.MustParseAddr("192.0.2.77")
		err := errors.New("read tcp 127.0.0.1:8443->192.0.2.77:40000: connection reset by peer")
		for range 1000 {
			r.refused("quic tunnel refused", err, stranger)
		}
		time.Sleep(RefusedEvery - time.Second)
		synctest.Wait()
		if got := out.lines("INFO"); len(got) != 0 {
			t.Fatalf("a summary before the minute is over: %q", got)
		}
		if got := out.lines("DEBUG"); len(got) != 1000 {
			t.Fatalf("%d debug lines, want one per refusal", len(got))
		}
		for range 500 {
			r.refused("quic tunnel refused", err, stranger)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		info := out.lines("INFO")
		if len(info) != 1 || !strings.Contains(info[0], "1500 tunnel handshakes refused in the last minute") {
			t.Fatalf("info lines %q, want one summary of 1500", info)
		}
		if strings.Contains(out.String(), "192.0.2.77") {
			t.Fatalf("the stranger's address is logged:\n%s", out.String())
		}
		out.reset()

		// A quiet minute: nothing said.
		time.Sleep(10 * RefusedEvery)
		synctest.Wait()
		if got := out.lines("INFO"); len(got) != 0 {
			t.Fatalf("a summary without refusals: %q", got)
		}

		// The next refusal starts a new minute; Close says what it counted.
		r.refused("tunnel refused", err, stranger)
		r.close()
		if info := out.lines("INFO"); len(info) != 1 || !strings.Contains(info[0], "1 tunnel handshakes refused") {
			t.Fatalf("info lines at close %q, want one summary of 1", info)
		}
		r.refused("tunnel refused", err, stranger)
		time.Sleep(2 * RefusedEvery)
		synctest.Wait()
		if got := out.lines("INFO"); len(got) != 1 {
			t.Fatalf("a closed listener summarized again: %q", got)
		}
	})
}

// TestRefusalsKeepAddresses checks that FERRY_LOG_CLIENT_IPS=true keeps the
// stranger's address in the debug line, and the summary still has none.
func TestRefusalsKeepAddresses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out lockedBuffer
		r := &refusals{log: slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})), transport: "ws", clientIPs: true}
		r.refused("tunnel refused", errors.New("bad tunnel token"), netip.MustParseAddr("192.0.2.77"))
		time.Sleep(RefusedEvery)
		synctest.Wait()
		if d := out.lines("DEBUG"); len(d) != 1 || !strings.Contains(d[0], "client=192.0.2.77") {
			t.Errorf("debug lines %q, want the client's address", d)
		}
		if i := out.lines("INFO"); len(i) != 1 || strings.Contains(i[0], "192.0.2.77") {
			t.Errorf("info lines %q, want one summary without addresses", i)
		}
	})
}
