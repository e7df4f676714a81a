package edge

import (
	"net/netip"
	"sync"
	"time"
)

// RecentChatWindow is how long after a chat connection an address may pass
// media through, with MediaAfterChat.
const RecentChatWindow = 10 * time.Minute

// maxRecent bounds the addresses remembered: a stranger who fakes chat
// openings from many addresses (IPv6 gives plenty) cannot make the edge
// hold more than this, some 5 MB.
const maxRecent = 100_000

// recentChats remembers the addresses (IPv4, or IPv6 /64) that had a chat
// connection lately. The zero value is ready.
type recentChats struct {
	mu   sync.Mutex
	seen map[netip.Addr]time.Time
}

// key is the client's address, or its /64 for IPv6, as the per-IP cap
// counts it: a phone's IPv6 address changes within its /64.
func recentKey(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

func (r *recentChats) chat(a netip.Addr, now time.Time) {
	if !a.IsValid() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[netip.Addr]time.Time{}
	}
	if len(r.seen) >= maxRecent {
		r.prune(now)
	}
	r.seen[recentKey(a)] = now
}

// prune forgets what is past the window, and when that is not enough, what
// is older than half the window and then whatever it must, down to half the
// bound, so that a flood costs one sweep per maxRecent/2 addresses.
func (r *recentChats) prune(now time.Time) {
	for a, t := range r.seen {
		if now.Sub(t) > RecentChatWindow {
			delete(r.seen, a)
		}
	}
	if len(r.seen) < maxRecent {
		return
	}
	cut := now.Add(-RecentChatWindow / 2)
	for a, t := range r.seen {
		if t.Before(cut) || len(r.seen) > maxRecent/2 {
			delete(r.seen, a)
		}
	}
}

// recent reports whether a had a chat connection within the window.
func (r *recentChats) recent(a netip.Addr, now time.Time) bool {
	if !a.IsValid() {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.seen[recentKey(a)]
	return ok && now.Sub(t) <= RecentChatWindow
}
