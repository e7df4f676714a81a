package edge

import (
	"net/netip"
	"sync"
)

// ipCounter counts concurrent clients per IPv4 address and per IPv6 /64:
// an IPv6 subscriber usually holds a whole /64 and could otherwise take a
// new address for each connection.
type ipCounter struct {
	mu sync.Mutex
	n  map[netip.Addr]int
}

func ipKey(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// acquire counts a client from a unless max (when positive) are already
// counted, and reports whether it did.
func (c *ipCounter) acquire(a netip.Addr, max int) bool {
	if max <= 0 || !a.IsValid() {
		return true
	}
	k := ipKey(a)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[netip.Addr]int{}
	}
	if c.n[k] >= max {
		return false
	}
	c.n[k]++
	return true
}

// release uncounts a client that acquire counted; the zero Addr is none.
func (c *ipCounter) release(a netip.Addr) {
	if !a.IsValid() {
		return
	}
	k := ipKey(a)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[k] <= 1 {
		delete(c.n, k)
	} else {
		c.n[k]--
	}
}
