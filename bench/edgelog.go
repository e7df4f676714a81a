package bench

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// The edge's log lines that a session's setup is timed between, and the
// one that says its dial failed.
const (
	msgStarting   = "ferry edge starting"
	msgTunnelUp   = "tunnel up"
	msgDialFailed = "tunnel dial failed"
)

// edgeLog is an edge's stderr, in FERRY_LOG_FORMAT=json, as an io.Writer
// (exec.Cmd's Stderr): it keeps the times of the setup's two lines, both
// as the edge wrote them (the record's "time", in nanoseconds) and as they
// arrived here, and done is closed once the session is up or its dial has
// failed. Lines that are not JSON are kept for errors, not parsed.
type edgeLog struct {
	done chan struct{}

	mu           sync.Mutex
	partial      []byte   // a line not yet ended
	tail         []string // the latest lines, cut, for errors
	starting, up stamp
	failed       string // the dial's error
	finished     bool   // done is closed
}

// stamp is when a line was written and when it arrived.
type stamp struct {
	ok              bool
	logged, arrived time.Time
}

// setupTime is a session's setup by the edge's clock and by arrival.
type setupTime struct{ logged, arrived time.Duration }

// tailLines and tailChars bound what an error quotes of the log; the
// start line, which lists the configuration, runs to a few kilobytes.
const (
	tailLines = 12
	tailChars = 300
)

func newEdgeLog() *edgeLog { return &edgeLog{done: make(chan struct{})} }

func (l *edgeLog) Write(p []byte) (int, error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(l.partial[:i], now)
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

// line takes one line that arrived at now.
func (l *edgeLog) line(b []byte, now time.Time) {
	l.tail = append(l.tail, string(b[:min(len(b), tailChars)]))
	if len(l.tail) > tailLines {
		l.tail = l.tail[1:]
	}
	var rec struct {
		Time time.Time `json:"time"`
		Msg  string    `json:"msg"`
		Err  string    `json:"err"`
	}
	if json.Unmarshal(b, &rec) != nil {
		return
	}
	switch {
	case rec.Msg == msgStarting && !l.starting.ok:
		l.starting = stamp{true, rec.Time, now}
	case rec.Msg == msgTunnelUp && l.starting.ok && !l.up.ok:
		l.up = stamp{true, rec.Time, now}
		l.finish()
	case rec.Msg == msgDialFailed && l.failed == "":
		l.failed = cmp.Or(rec.Err, "no error given")
		l.finish()
	}
}

func (l *edgeLog) finish() {
	if !l.finished {
		l.finished = true
		close(l.done)
	}
}

// result is the session's setup time, or why there is none.
func (l *edgeLog) result() (setupTime, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.failed != "":
		return setupTime{}, fmt.Errorf("%s: %s", msgDialFailed, l.failed)
	case !l.starting.ok:
		return setupTime{}, fmt.Errorf("no %q line", msgStarting)
	case !l.up.ok:
		return setupTime{}, fmt.Errorf("no %q line", msgTunnelUp)
	}
	t := setupTime{logged: l.up.logged.Sub(l.starting.logged), arrived: l.up.arrived.Sub(l.starting.arrived)}
	if t.logged <= 0 {
		return setupTime{}, errors.New("the log's times do not advance (no nanoseconds in them?)")
	}
	return t, nil
}

// text is the latest lines, for an error.
func (l *edgeLog) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(slices.Concat(l.tail, []string{string(l.partial[:min(len(l.partial), tailChars)])}), "\n")
}
