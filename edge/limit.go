package edge

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Admission by address, and why there is no fixed cap by default.
//
// Behind carrier-grade NAT (Iran's mobile carriers use it widely) thousands
// of phones share one public IPv4 address, so a fixed cap per address (the
// old default was 200) refuses the phones after the cap's while the edge
// has room for them. So by default no address is capped while the edge
// holds fewer than pressureAt(MaxConns), 80% of MaxConns. At or above it,
// a new connection from an address that holds more than the mean per
// counted address is refused: the addresses holding the most are refused
// first, one holding no more than the others (a NAT with as many phones as
// every other address has) is not, a new address always gets in, and the
// last 20% of MaxConns goes to those holding less. At MaxConns everything
// new is refused. With a single address the mean is its own count, so it is
// never refused for its share.
//
// The mean is the count of counted connections over the number of
// addresses holding any, both kept up to date, so the rule costs one map
// look-up per admission, with no scan of the addresses.
//
// Server.MaxConnsPerIP (FERRY_EDGE_MAX_CONNS_PER_IP) stays as an explicit
// hard cap, off by default.

// pressureAt is how many clients the edge holds when fairness starts: 80%
// of maxConns, rounded up; zero (no MaxConns) never starts it.
func pressureAt(maxConns int) int64 {
	if maxConns <= 0 {
		return 0
	}
	return int64(maxConns - maxConns/5)
}

// capKind names the cap that refused a client.
type capKind int

const (
	capNone      capKind = iota
	capMaxConns          // FERRY_EDGE_MAX_CONNS: the edge is full
	capPerIP             // FERRY_EDGE_MAX_CONNS_PER_IP: the hard cap
	capFairShare         // over the mean per address, under pressure
	numCaps
)

// refusal is the (debug) log message of a client k refused: constant, so
// that a flood of refusals allocates nothing for a line not written.
func (k capKind) refusal() string {
	switch k {
	case capMaxConns:
		return "client refused: the edge holds FERRY_EDGE_MAX_CONNS"
	case capPerIP:
		return "client refused: its address holds FERRY_EDGE_MAX_CONNS_PER_IP"
	case capFairShare:
		return "client refused: its address holds more than its share, and the edge 80% of FERRY_EDGE_MAX_CONNS"
	}
	return "client refused"
}

// pressed says whether the edge holds pressureAt(MaxConns) clients or
// more, not counting self of them (the one being admitted, when counted).
func (s *Server) pressed(self int64) bool {
	p := pressureAt(s.MaxConns)
	return p > 0 && s.active.Load()-self >= p
}

// ipCounter counts concurrent clients per IPv4 address and per IPv6 /64:
// an IPv6 subscriber usually holds a whole /64 and could otherwise take a
// new address for each connection.
type ipCounter struct {
	mu    sync.Mutex
	n     map[netip.Addr]int
	total int // the sum of n, for the mean per address
}

func ipKey(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// acquire counts a client from a unless a cap refuses it, and returns the
// cap that did, or capNone when it counted the client. hardMax (when
// positive) is MaxConnsPerIP; pressed says the edge holds pressureAt or
// more, when a holding more than the mean is refused. The zero Addr is
// neither capped nor counted.
func (c *ipCounter) acquire(a netip.Addr, hardMax int, pressed bool) capKind {
	if !a.IsValid() {
		return capNone
	}
	// Counted even with no cap in force: the mean needs every client.
	k := ipKey(a)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[netip.Addr]int{}
	}
	held := c.n[k]
	if hardMax > 0 && held >= hardMax {
		return capPerIP
	}
	// held > total/len(n), in integers; a new address (held 0) passes.
	if pressed && held*len(c.n) > c.total {
		return capFairShare
	}
	c.n[k] = held + 1
	c.total++
	return capNone
}

// release uncounts a client that acquire counted; the zero Addr is none.
func (c *ipCounter) release(a netip.Addr) {
	if !a.IsValid() {
		return
	}
	k := ipKey(a)
	c.mu.Lock()
	defer c.mu.Unlock()
	held, ok := c.n[k]
	if !ok {
		return
	}
	c.total--
	if held <= 1 {
		delete(c.n, k)
	} else {
		c.n[k] = held - 1
	}
}

// Refusals are the clients an edge closed at once for a connection cap,
// since start, by cap; the stats page shows them.
type Refusals struct {
	MaxConns      int64 // the edge held FERRY_EDGE_MAX_CONNS
	MaxConnsPerIP int64 // the address held FERRY_EDGE_MAX_CONNS_PER_IP
	FairShare     int64 // the address held more than the mean per address while the edge held 80% of FERRY_EDGE_MAX_CONNS
}

// Total is every refusal, of any cap.
func (r Refusals) Total() int64 { return r.MaxConns + r.MaxConnsPerIP + r.FairShare }

// refusals counts refusals by cap and wakes warnRefusals.
type refusals struct {
	n    [numCaps]atomic.Int64
	kick chan struct{} // capacity 1, made by Run; nil before
}

func (r *refusals) add(k capKind) {
	r.n[k].Add(1)
	select {
	case r.kick <- struct{}{}:
	default: // already woken, or not running
	}
}

func (r *refusals) load() Refusals {
	return Refusals{r.n[capMaxConns].Load(), r.n[capPerIP].Load(), r.n[capFairShare].Load()}
}

// RefusalWarnEvery is the least time between two WARNs about refusals: a
// flood of refused clients must not flood the log.
const RefusalWarnEvery = time.Minute

// Refusals returns the edge's refusals by cap, since start.
func (s *Server) Refusals() Refusals { return s.refusals.load() }

// warnRefusals logs one WARN at the first refusal, then at most one each
// RefusalWarnEvery while refusals go on, each with the refusals since the
// last one by cap and that cap's value (never an address), until ctx ends.
// The first comes at once so that an operator watching the log sees a
// limit bite when it does, and none is lost: each WARN counts all since
// the one before.
func (s *Server) warnRefusals(ctx context.Context) {
	var last Refusals
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.refusals.kick:
		}
		for {
			// A kick from before this load is counted by it.
			select {
			case <-s.refusals.kick:
			default:
			}
			now := s.refusals.load()
			if now == last {
				break // quiet for a whole period: wait for the next refusal
			}
			s.Log.Warn("clients refused at a connection cap, since the last such line", s.refusalAttrs(now, last)...)
			last = now
			t := time.NewTimer(RefusalWarnEvery)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// refusalAttrs names each cap that refused since last, with its count and
// its value.
func (s *Server) refusalAttrs(now, last Refusals) []any {
	attrs := []any{"refused", now.Total() - last.Total()}
	if d := now.MaxConns - last.MaxConns; d > 0 {
		attrs = append(attrs, slog.Group("max_conns", "refused", d, "cap", s.MaxConns))
	}
	if d := now.MaxConnsPerIP - last.MaxConnsPerIP; d > 0 {
		attrs = append(attrs, slog.Group("max_conns_per_ip", "refused", d, "cap", s.MaxConnsPerIP))
	}
	if d := now.FairShare - last.FairShare; d > 0 {
		attrs = append(attrs, slog.Group("fair_share", "refused", d, "above_conns", pressureAt(s.MaxConns)))
	}
	return attrs
}
