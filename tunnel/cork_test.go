package tunnel

import (
	"net"
	"testing"
)

// countingConn counts the writes that reach it.
type countingConn struct {
	net.Conn
	writes [][]byte
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, append([]byte(nil), p...))
	return len(p), nil
}

// TestCork checks that corked writes leave as one, in order, and that
// writes outside a cork pass straight through.
func TestCork(t *testing.T) {
	under := &countingConn{}
	c := &corkConn{Conn: under}
	c.Write([]byte("pong"))
	c.cork()
	for _, p := range []string{"header", "4 KiB", "more", "the rest"} {
		c.Write([]byte(p))
	}
	if len(under.writes) != 1 {
		t.Fatalf("%d writes reached the connection while corked, want only the one before", len(under.writes))
	}
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	c.uncork() // nothing held: no write
	if len(under.writes) != 2 || string(under.writes[1]) != "header4 KiBmorethe rest" {
		t.Fatalf("writes %q", under.writes)
	}
}
