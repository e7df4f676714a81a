package logcheck

import (
	"strings"
	"testing"
)

// TestLine checks that a line holding something forbidden is noted, named
// for who wrote it, and that other lines are not.
func TestLine(t *testing.T) {
	c := &Checker{Forbidden: []string{"s3cret", "127.0.0.2"}}
	c.Line("edge", "level=INFO msg=fine addr=127.0.0.1:80")
	c.Line("edge", "level=DEBUG err=\"from 127.0.0.2:5555\"\n")
	lines := c.Lines()
	if len(lines) != 1 || !strings.Contains(lines[0], "edge") || !strings.Contains(lines[0], `"127.0.0.2"`) {
		t.Fatalf("noted %q, want the one line with the client's address", lines)
	}
}
