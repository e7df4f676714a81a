// Package logcheck fails a test binary whose processes or loggers wrote a
// line holding what no log may hold (a secret, a URL password, a client's
// address), whichever test made the line, even one logged after its test
// ended by goroutines its cleanups stop.
package logcheck

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// Checker notes the lines that hold any of Forbidden.
type Checker struct {
	Forbidden []string

	mu    sync.Mutex
	lines []string
}

// Line notes line, written by who, if it holds something forbidden.
func (c *Checker) Line(who, line string) {
	for _, f := range c.Forbidden {
		if strings.Contains(line, f) {
			c.mu.Lock()
			c.lines = append(c.lines, fmt.Sprintf("%s logged %q: %s", who, f, strings.TrimSpace(line)))
			c.mu.Unlock()
			return
		}
	}
}

// Lines returns the lines noted so far.
func (c *Checker) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// Main wraps m so that the run fails when any line was noted; goleak's
// VerifyTestMain takes it in m's place.
func (c *Checker) Main(m *testing.M) interface{ Run() int } { return main{m, c} }

type main struct {
	m *testing.M
	c *Checker
}

func (w main) Run() int {
	code := w.m.Run()
	if lines := w.c.Lines(); len(lines) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d log lines hold what no log may hold:\n%s\n", len(lines), strings.Join(lines, "\n"))
		if code == 0 {
			code = 1
		}
	}
	return code
}
