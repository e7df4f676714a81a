package dnsupdate

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"ferry/internal/named"
)

// env is a getenv over a map.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func addrs(s ...string) []netip.Addr {
	var a []netip.Addr
	for _, v := range s {
		a = append(a, netip.MustParseAddr(v))
	}
	return a
}

// lookup asks the server for name's records of qtype, unsigned, as a
// resolver would: addresses and their TTLs.
func lookup(t testing.TB, server, name string, qtype uint16) (got []netip.Addr, ttls []uint32) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	r, _, err := (&dns.Client{Net: "tcp", Timeout: 5 * time.Second}).Exchange(m, server)
	if err != nil {
		t.Fatalf("querying %s: %v", name, err)
	}
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			a, _ := netip.AddrFromSlice(rr.A)
			got, ttls = append(got, a), append(ttls, rr.Hdr.Ttl)
		case *dns.AAAA:
			a, _ := netip.AddrFromSlice(rr.AAAA)
			got, ttls = append(got, a), append(ttls, rr.Hdr.Ttl)
		}
	}
	return got, ttls
}

// wantRecords fails unless name's A and AAAA records at server are
// exactly v4 and v6, each with ttl.
func wantRecords(t testing.TB, server, name string, ttl uint32, v4, v6 []netip.Addr) {
	t.Helper()
	for _, q := range []struct {
		qtype uint16
		want  []netip.Addr
	}{{dns.TypeA, v4}, {dns.TypeAAAA, v6}} {
		got, ttls := lookup(t, server, name, q.qtype)
		if !sameAddrs(got, q.want) {
			t.Errorf("%s %s = %v, want %v", name, dns.TypeToString[q.qtype], got, q.want)
		}
		for _, x := range ttls {
			if x != ttl {
				t.Errorf("%s %s TTL = %d, want %d", name, dns.TypeToString[q.qtype], x, ttl)
			}
		}
	}
}

func TestRFC2136Moves(t *testing.T) {
	n := named.Start(t)
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"tcp, key file, zone by SOA", map[string]string{VarServer: n.Addr, VarTSIGFile: n.KeyFile}},
		{"udp, inline key, zone given", map[string]string{VarServer: n.Addr, VarTransport: "udp", VarZone: "example.test", VarTSIG: named.Key + ":hmac-sha256:" + n.Secret}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := New("rfc2136", env(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			// From the zone file's addresses to new ones, A and AAAA.
			start := time.Now()
			if err := u.Point(ctx, "Edge.Example.Test", addrs("192.0.2.10", "2001:db8::10"), 60*time.Second); err != nil {
				t.Fatal(err)
			}
			t.Logf("Point, from call to verified: %v", time.Since(start))
			wantRecords(t, n.Addr, named.Name, 60, addrs("192.0.2.10"), addrs("2001:db8::10"))
			// Two IPv4 addresses (repeated and mapped ones folded), and
			// no IPv6 any more: the AAAA RRset goes.
			if err := u.Point(ctx, named.Name, addrs("192.0.2.12", "::ffff:192.0.2.11", "192.0.2.12"), 120*time.Second); err != nil {
				t.Fatal(err)
			}
			wantRecords(t, n.Addr, named.Name, 120, addrs("192.0.2.11", "192.0.2.12"), nil)
			// A name that did not exist gets created.
			if err := u.Point(ctx, "new.example.test", addrs("2001:db8::20"), time.Minute); err != nil {
				t.Fatal(err)
			}
			wantRecords(t, n.Addr, "new.example.test.", 60, nil, addrs("2001:db8::20"))
			// Other names are left alone.
			wantRecords(t, n.Addr, "other.example.test.", 300, addrs("192.0.2.99"), nil)
		})
	}
}

// TestRFC2136Refused checks that a key the server refuses is reported in
// words, that no secret is in the error, and that nothing changed.
func TestRFC2136Refused(t *testing.T) {
	n := named.Start(t)
	wrong := named.RandomSecret()
	for _, tc := range []struct {
		name, tsig, want string
	}{
		{"wrong secret", named.Key + ":hmac-sha256:" + wrong, "the server refused the TSIG key ferry-test (hmac-sha256): wrong secret or algorithm?"},
		{"wrong algorithm", named.Key + ":hmac-sha512:" + n.Secret, "the server refused the TSIG key ferry-test (hmac-sha512): wrong secret or algorithm?"},
		{"unknown key", "nobody:hmac-sha256:" + n.Secret, "the server refused the TSIG key nobody (hmac-sha256): wrong secret or algorithm?"},
		{"key without the right", n.IdleKey, "key ferry-idle (hmac-sha256) is not allowed to update zone example.test."},
	} {
		for _, zone := range []string{"", "example.test"} {
			t.Run(tc.name+" zone="+zone, func(t *testing.T) {
				u, err := New("rfc2136", env(map[string]string{VarServer: n.Addr, VarTSIG: tc.tsig, VarZone: zone}))
				if err != nil {
					t.Fatal(err)
				}
				err = u.Point(t.Context(), named.Name, addrs("192.0.2.66"), time.Minute)
				if err == nil {
					t.Fatal("Point succeeded")
				}
				t.Log(err)
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error %q\nwant it to say %q", err, tc.want)
				}
				for _, s := range []string{n.Secret, wrong, n.IdleSecret} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q holds a secret", err)
					}
				}
				wantRecords(t, n.Addr, named.Name, 300, addrs("192.0.2.1"), addrs("2001:db8::1"))
			})
		}
	}
}

// TestRFC2136NamePolicy checks the README's update-policy, a key that may
// change only the edge's name, A and AAAA: the update (which deletes and
// adds both sets) passes, another name is refused.
func TestRFC2136NamePolicy(t *testing.T) {
	n := named.Start(t)
	u, err := New("rfc2136", env(map[string]string{VarServer: n.Addr, VarTSIG: n.EdgeKey}))
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Point(t.Context(), named.Name, addrs("192.0.2.30", "2001:db8::30"), time.Minute); err != nil {
		t.Fatal(err)
	}
	wantRecords(t, n.Addr, named.Name, 60, addrs("192.0.2.30"), addrs("2001:db8::30"))
	err = u.Point(t.Context(), "other.example.test", addrs("192.0.2.31"), time.Minute)
	if err == nil || !strings.Contains(err.Error(), "key ferry-edge (hmac-sha512) is not allowed to update zone example.test.") {
		t.Errorf("Point on another name = %v, want REFUSED in words", err)
	}
	wantRecords(t, n.Addr, "other.example.test.", 300, addrs("192.0.2.99"), nil)
}

func TestRFC2136NotInZone(t *testing.T) {
	n := named.Start(t)
	u, err := New("rfc2136", env(map[string]string{VarServer: n.Addr, VarTSIGFile: n.KeyFile, VarZone: "example.test"}))
	if err != nil {
		t.Fatal(err)
	}
	err = u.Point(t.Context(), "edge.example.org", addrs("192.0.2.66"), time.Minute)
	if err == nil || !strings.Contains(err.Error(), "edge.example.org. is not in zone example.test.") {
		t.Errorf("Point = %v, want an error saying the name is not in the zone", err)
	}
}

// TestRFC2136Timeout checks a server that never answers: the error says
// so, in the time given, rather than hanging.
func TestRFC2136Timeout(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, zone := range []string{"", "example.test"} {
		u, err := newRFC2136(env(map[string]string{VarServer: pc.LocalAddr().String(), VarTransport: "udp", VarZone: zone, VarTSIG: named.Key + ":hmac-sha256:" + named.RandomSecret()}))
		if err != nil {
			t.Fatal(err)
		}
		u.timeout = 100 * time.Millisecond
		err = u.Point(context.Background(), named.Name, addrs("192.0.2.66"), time.Minute)
		if err == nil || !strings.Contains(err.Error(), "no answer over udp within 100ms") {
			t.Errorf("Point = %v, want a timeout in words", err)
		}
	}
	// The caller's context ends first.
	u, err := newRFC2136(env(map[string]string{VarServer: pc.LocalAddr().String(), VarTransport: "udp", VarZone: "example.test", VarTSIG: named.Key + ":hmac-sha256:" + named.RandomSecret()}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := u.Point(ctx, named.Name, addrs("192.0.2.66"), time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("Point with a cancelled context = %v, want context.Canceled", err)
	}
}

// BenchmarkPoint measures Point against BIND, from call to verified, and
// reports it as a ratio to the baseline of one signed SOA query over TCP to
// the same server, timed in the same run just before (Point makes one
// UPDATE and two queries, each on a connection of its own).
func BenchmarkPoint(b *testing.B) {
	n := named.Start(b)
	u, err := newRFC2136(env(map[string]string{VarServer: n.Addr, VarTSIGFile: n.KeyFile, VarZone: "example.test"}))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// Not testing.Benchmark: called inside a benchmark, it waits for the
	// lock the running benchmark holds.
	const baseN = 200
	start := time.Now()
	for range baseN {
		m := new(dns.Msg)
		m.SetQuestion(named.Zone, dns.TypeSOA)
		if _, err := u.exchange(ctx, m, ""); err != nil {
			b.Fatal(err)
		}
	}
	base := time.Since(start) / baseN
	set := [][]netip.Addr{addrs("192.0.2.10", "2001:db8::10"), addrs("192.0.2.11", "2001:db8::11")}
	i := 0
	for b.Loop() {
		if err := u.Point(ctx, named.Name, set[i%2], time.Minute); err != nil {
			b.Fatal(err)
		}
		i++
	}
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(per)/float64(base), "x_soa_query")
	b.ReportMetric(float64(base)/1e6, "soa_query_ms")
}
