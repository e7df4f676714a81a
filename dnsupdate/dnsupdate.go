// Package dnsupdate points a host name's A and AAAA records at a set of
// addresses, so that a new edge takes over the name phones already use and
// the share link never changes.
//
// Two providers: "rfc2136" (a dynamic update signed with TSIG, which any
// authoritative server speaks: BIND, Knot, PowerDNS) and "cloudflare" (its
// v4 API). Both take their settings from FERRY_DNS_* variables (vars.go)
// and return only once the authoritative side answers with the new records.
package dnsupdate

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Updater points a host name's A/AAAA records at addresses.
type Updater interface {
	// Point makes name's A and AAAA records exactly addrs, with ttl, and returns once the authoritative server has them.
	Point(ctx context.Context, name string, addrs []netip.Addr, ttl time.Duration) error
}

// New returns the Updater of provider ("rfc2136" or "cloudflare"), configured from getenv; errors name the variable.
func New(provider string, getenv func(string) string) (Updater, error) {
	switch provider {
	case "rfc2136":
		// Each case returns its own nil on error, never a typed nil
		// inside a non-nil Updater.
		u, err := newRFC2136(getenv)
		if err != nil {
			return nil, err
		}
		return u, nil
	case "cloudflare":
		u, err := newCloudflare(getenv)
		if err != nil {
			return nil, err
		}
		return u, nil
	}
	return nil, fmt.Errorf("unknown DNS provider %q: want rfc2136 or cloudflare", provider)
}

// records is what Point was asked for, checked and normalised once for
// both providers.
type records struct {
	name string // fully qualified, lower case, with the final dot
	v4   []netip.Addr
	v6   []netip.Addr
	ttl  uint32 // seconds
}

// newRecords checks Point's arguments. An empty addrs is refused rather
// than taken as "delete the name": a caller's bug must not take a working
// edge off the air.
func newRecords(name string, addrs []netip.Addr, ttl time.Duration) (records, error) {
	fqdn, err := checkName(name)
	if err != nil {
		return records{}, fmt.Errorf("host name %q: %w", name, err)
	}
	if len(addrs) == 0 {
		return records{}, errors.New("no addresses to point " + fqdn + " at")
	}
	if ttl < time.Second || ttl > 24*time.Hour {
		return records{}, fmt.Errorf("TTL %v: want 1s to 24h", ttl)
	}
	r := records{name: fqdn, ttl: uint32(ttl / time.Second)}
	for _, a := range addrs {
		if !a.IsValid() {
			return records{}, errors.New("an invalid address among the addresses")
		}
		// An IPv4-mapped IPv6 address is an IPv4 address to a resolver's
		// client; a zone in the IPv6 literal means nothing in DNS.
		a = a.Unmap().WithZone("")
		if a.Is4() {
			r.v4 = append(r.v4, a)
		} else {
			r.v6 = append(r.v6, a)
		}
	}
	for _, s := range []*[]netip.Addr{&r.v4, &r.v6} {
		slices.SortFunc(*s, netip.Addr.Compare)
		*s = slices.Compact(*s)
	}
	return r, nil
}

// sameAddrs reports whether got (in any order, possibly with repeats) is
// exactly want (sorted, without repeats).
func sameAddrs(got, want []netip.Addr) bool {
	got = slices.Clone(got)
	slices.SortFunc(got, netip.Addr.Compare)
	return slices.Equal(slices.Compact(got), want)
}
