package e2e

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"ferry/internal/logcheck"
)

// clientIP is the address the tests' clients (and strangers) dial from:
// servers listen on 127.0.0.1, so that a client's address in a log line is
// told from a listener's.
const clientIP = "127.0.0.2"

// clientDialer dials from clientIP.
var clientDialer = &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP)}, Timeout: 10 * time.Second}

// logs notes the log lines that hold what no log line may hold, at any
// level; TestMain fails the run if there is any.
var logs = &logcheck.Checker{Forbidden: []string{secret, clientIP}}

// checkedLog is where testLogger's lines go: each is checked for what is
// forbidden, and shown on stderr with FERRY_TEST_LOG set.
type checkedLog struct {
	name string // the test's
	show io.Writer
}

func (c checkedLog) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		logs.Line(c.name, string(line))
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
