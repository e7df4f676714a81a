package dnstun

import (
	"net"
	"testing"
	"time"
)

func testClient(rate float64, n int) *Client {
	c := &Client{cfg: ClientConfig{Rate: rate}, pending: map[uint16]*query{}}
	now := time.Unix(1e9, 0)
	for i := range n {
		c.res = append(c.res, &resolver{addr: &net.UDPAddr{Port: 53 + i}, tokens: c.burst(), last: now})
	}
	return c
}

// TestRateLimit: over ten seconds, each resolver gets its rate and its
// burst, no more, and they are used in turn.
func TestRateLimit(t *testing.T) {
	c := testClient(50, 2)
	start := time.Unix(1e9, 0)
	got := map[*resolver]int{}
	for now := start; now.Before(start.Add(10 * time.Second)); now = now.Add(time.Millisecond) {
		for {
			r, wait := c.pick(now)
			if r == nil {
				if wait <= 0 {
					t.Fatal("no resolver and no wait")
				}
				break
			}
			got[r]++
		}
	}
	for _, r := range c.res {
		if want := 50*10 + int(c.burst()); got[r] < want-2 || got[r] > want {
			t.Errorf("%v got %d queries in 10 s, want %d", r.addr, got[r], want)
		}
	}
}

// TestSetAside: a resolver that fails Fails times in a row gets no query
// for SetAside, then one at a time; failing again sets it aside for twice
// as long, and an answer takes it back.
func TestSetAside(t *testing.T) {
	c := testClient(1000, 2)
	live, dead := c.res[0], c.res[1]
	now := time.Unix(1e9, 0)
	for range DefaultFails {
		c.failed(dead, now)
	}
	count := func(d time.Duration) (n int) {
		for end := now.Add(d); now.Before(end); now = now.Add(10 * time.Millisecond) {
			if r, _ := c.pick(now); r == dead {
				n++
			}
		}
		return n
	}
	if n := count(DefaultSetAside - time.Second); n != 0 {
		t.Errorf("set aside, it got %d queries", n)
	}
	if n := count(2 * time.Second); n != 1 {
		t.Errorf("after its time aside, it got %d queries, want one probe", n)
	}
	c.failed(dead, now)
	if n := count(2*DefaultSetAside - time.Second); n != 0 {
		t.Errorf("set aside again, it got %d queries", n)
	}
	if n := count(2 * time.Second); n != 1 {
		t.Errorf("after its second time aside, it got %d queries, want one probe", n)
	}
	dead.answered()
	if n := count(time.Second); n < 40 {
		t.Errorf("answering again, it got %d queries in a second", n)
	}
	_ = live
	// With every resolver set aside, they are all tried.
	for range DefaultFails {
		c.failed(live, now)
		c.failed(dead, now)
	}
	if r, _ := c.pick(now); r == nil {
		t.Error("with every resolver set aside, none was tried")
	}
}
