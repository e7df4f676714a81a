package e2e

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// clientIP is the address the tests' clients (and strangers) dial from:
// servers listen on 127.0.0.1, so that a client's address in a log line is
// told from a listener's.
const clientIP = "127.0.0.2"

// clientDialer dials from clientIP.
var clientDialer = &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP)}, Timeout: 10 * time.Second}

// forbidden is what no log line may hold, at any level.
var forbidden = []string{secret, clientIP}

// leaks holds the log lines that held something forbidden.
var leaks struct {
	mu    sync.Mutex
	lines []string
}

func leakedLines() []string {
	leaks.mu.Lock()
	defer leaks.mu.Unlock()
	return append([]string(nil), leaks.lines...)
}

// checkedLog is where testLogger's lines go: each is checked for what is
// forbidden, and shown on stderr with FERRY_TEST_LOG set.
type checkedLog struct {
	name string // the test's
	show io.Writer
}

func (c checkedLog) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		for _, f := range forbidden {
			if bytes.Contains(line, []byte(f)) {
				leaks.mu.Lock()
				leaks.lines = append(leaks.lines, fmt.Sprintf("%s: a line holds %q: %s", c.name, f, strings.TrimSpace(string(line))))
				leaks.mu.Unlock()
				break
			}
		}
	}
	return c.show.Write(p)
}

// testLogger logs at debug level, every line checked (checkedLog).
func testLogger(t testing.TB) *slog.Logger {
	show := io.Discard
	if os.Getenv("FERRY_TEST_LOG") != "" {
		show = os.Stderr
	}
	return slog.New(slog.NewTextHandler(checkedLog{name: t.Name(), show: show}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// leakChecked runs the tests, and fails them if a line of theirs held
// something forbidden: lines may be logged after the test that made them
// has ended, by goroutines its cleanups stop.
type leakChecked struct{ m *testing.M }

func (l leakChecked) Run() int {
	code := l.m.Run()
	if lines := leakedLines(); len(lines) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d log lines hold the secret or a client's address:\n%s\n", len(lines), strings.Join(lines, "\n"))
		if code == 0 {
			code = 1
		}
	}
	return code
}
