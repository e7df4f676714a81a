package dnsupdate

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/miekg/dns"
)

// rfc2136 updates a zone by RFC 2136 dynamic update, signed with TSIG
// (RFC 8945), at the zone's primary server.
type rfc2136 struct {
	server    string // HOST:PORT
	transport string // "tcp" or "udp"
	zone      string // fully qualified, or "" to find by SOA
	key       tsigKey
	// timeout bounds each exchange, inside the caller's context: a server
	// that drops packets (a firewall) must not hang a deploy.
	timeout time.Duration
}

func newRFC2136(getenv func(string) string) (*rfc2136, error) {
	u := &rfc2136{timeout: 10 * time.Second}
	var err error
	if u.server, err = parseServer(getenv(VarServer)); err != nil {
		return nil, &VarError{Var: VarServer, Form: formServer, Err: err}
	}
	if u.transport, err = parseTransport(getenv(VarTransport)); err != nil {
		return nil, &VarError{Var: VarTransport, Form: formTransport, Err: err}
	}
	if u.zone, err = parseZone(getenv(VarZone)); err != nil {
		return nil, &VarError{Var: VarZone, Form: formZone, Err: err}
	}
	inline, file := getenv(VarTSIG), getenv(VarTSIGFile)
	switch {
	case inline != "" && file != "":
		return nil, &VarError{Var: VarTSIG, Form: formTSIG, Err: errors.New("set together with " + VarTSIGFile + ": set one of them")}
	case inline != "":
		if u.key, err = parseTSIG(inline); err != nil {
			return nil, &VarError{Var: VarTSIG, Form: formTSIG, Err: err}
		}
	case file != "":
		text, err := os.ReadFile(file)
		if err != nil {
			return nil, &VarError{Var: VarTSIGFile, Form: formTSIGFile, Err: err}
		}
		if u.key, err = parseKeyFile(string(text)); err != nil {
			return nil, &VarError{Var: VarTSIGFile, Form: formTSIGFile, Err: fmt.Errorf("%s: %w", file, err)}
		}
	default:
		// An unsigned update is accepted only by a server that trusts
		// addresses, which is a server anyone on the path can update.
		return nil, &VarError{Var: VarTSIGFile, Form: formTSIGFile, Err: errors.New("not set, nor " + VarTSIG + ": the update must be signed with a TSIG key")}
	}
	return u, nil
}

// Point replaces name's A and AAAA RRsets in one UPDATE (so resolvers
// never see the name without addresses, nor with old and new together),
// then asks the same server until it answers with exactly the new ones.
func (u *rfc2136) Point(ctx context.Context, name string, addrs []netip.Addr, ttl time.Duration) error {
	recs, err := newRecords(name, addrs, ttl)
	if err != nil {
		return fmt.Errorf("dns update: %w", err)
	}
	zone := u.zone
	if zone == "" {
		if zone, err = u.findZone(ctx, recs.name); err != nil {
			return fmt.Errorf("dns update of %s: %w", recs.name, err)
		}
	}
	if !dns.IsSubDomain(zone, recs.name) {
		return fmt.Errorf("dns update: %s is not in zone %s (%s)", recs.name, zone, VarZone)
	}
	m := new(dns.Msg)
	m.SetUpdate(zone)
	m.RemoveRRset([]dns.RR{
		&dns.A{Hdr: dns.RR_Header{Name: recs.name, Rrtype: dns.TypeA, Class: dns.ClassINET}},
		&dns.AAAA{Hdr: dns.RR_Header{Name: recs.name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET}},
	})
	m.Insert(recs.rrs())
	if _, err := u.exchange(ctx, m, zone); err != nil {
		return fmt.Errorf("dns update of %s in zone %s at %s: %w", recs.name, zone, u.server, err)
	}
	if err := u.verify(ctx, recs); err != nil {
		return fmt.Errorf("dns update of %s at %s: %w", recs.name, u.server, err)
	}
	return nil
}

// rrs are the A and AAAA records to insert.
func (r records) rrs() []dns.RR {
	var rrs []dns.RR
	for _, a := range r.v4 {
		rrs = append(rrs, &dns.A{Hdr: dns.RR_Header{Name: r.name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: r.ttl}, A: a.AsSlice()})
	}
	for _, a := range r.v6 {
		rrs = append(rrs, &dns.AAAA{Hdr: dns.RR_Header{Name: r.name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: r.ttl}, AAAA: a.AsSlice()})
	}
	return rrs
}

// findZone asks the server for name's SOA: the owner of the SOA in the
// answer (name is the apex) or in the authority section (it is below)
// is the zone the server is authoritative for.
func (u *rfc2136) findZone(ctx context.Context, name string) (string, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeSOA)
	m.RecursionDesired = false
	r, err := u.exchange(ctx, m, "")
	if err != nil && !errors.Is(err, errNXDomain) {
		return "", fmt.Errorf("finding the zone by an SOA query (or set %s): %w", VarZone, err)
	}
	for _, rr := range append(r.Answer, r.Ns...) {
		if soa, ok := rr.(*dns.SOA); ok && dns.IsSubDomain(soa.Hdr.Name, name) {
			return dns.CanonicalName(soa.Hdr.Name), nil
		}
	}
	return "", fmt.Errorf("%s gave no SOA for %s: is it authoritative for the zone? (or set %s)", u.server, name, VarZone)
}

// verify asks the server for name's A and AAAA records until they are
// exactly recs. An authoritative server has applied an update it
// acknowledged, but one that applies them in the background (a database
// back end) may take a moment, so it asks a few times.
func (u *rfc2136) verify(ctx context.Context, recs records) error {
	delay := 50 * time.Millisecond
	var last error
	for range 8 {
		if last = u.check(ctx, recs); last == nil {
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("checking the new records: %w (last: %v)", ctx.Err(), last)
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
	return fmt.Errorf("the server acknowledged the update but does not answer with it: %w", last)
}

// check asks once for name's A and AAAA records and compares them to recs.
func (u *rfc2136) check(ctx context.Context, recs records) error {
	for _, q := range []struct {
		qtype uint16
		want  []netip.Addr
	}{{dns.TypeA, recs.v4}, {dns.TypeAAAA, recs.v6}} {
		m := new(dns.Msg)
		m.SetQuestion(recs.name, q.qtype)
		m.RecursionDesired = false
		r, err := u.exchange(ctx, m, "")
		if err != nil && !errors.Is(err, errNXDomain) {
			return fmt.Errorf("querying %s %s: %w", recs.name, dns.TypeToString[q.qtype], err)
		}
		var got []netip.Addr
		for _, rr := range r.Answer {
			var a netip.Addr
			switch rr := rr.(type) {
			case *dns.A:
				a, _ = netip.AddrFromSlice(rr.A)
			case *dns.AAAA:
				a, _ = netip.AddrFromSlice(rr.AAAA)
			default:
				continue
			}
			if rr.Header().Ttl != recs.ttl {
				return fmt.Errorf("%s %s has TTL %d, want %d", recs.name, dns.TypeToString[q.qtype], rr.Header().Ttl, recs.ttl)
			}
			got = append(got, a.Unmap())
		}
		if !sameAddrs(got, q.want) {
			return fmt.Errorf("%s %s is %v, want %v", recs.name, dns.TypeToString[q.qtype], got, q.want)
		}
	}
	return nil
}
