package dnsupdate

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

const cfToken = "Zx9-test-token-0123456789abcdefghijklmn"

func cfEnv(f *fakeCloudflare, extra ...string) func(string) string {
	m := map[string]string{VarCloudflareToken: cfToken, VarCloudflareAPI: f.api()}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return env(m)
}

func TestCloudflarePoint(t *testing.T) {
	f := startFakeCloudflare(t, cfToken)
	f.add("edge.example.com", "A", "192.0.2.1", 300, true)
	f.add("edge.example.com", "A", "192.0.2.2", 300, false)
	f.add("edge.example.com", "A", "192.0.2.9", 60, false)
	f.add("edge.example.com", "AAAA", "2001:db8::1", 60, false)
	f.add("edge.example.com", "TXT", "\"hello\"", 300, false)
	f.add("other.example.com", "A", "192.0.2.99", 300, false)
	u, err := New("cloudflare", cfEnv(f))
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Point(t.Context(), "edge.example.com", addrs("192.0.2.2", "192.0.2.3", "2001:db8::5", "2001:db8::6"), time.Minute); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"edge.example.com A 192.0.2.2 60 false",
		"edge.example.com A 192.0.2.3 60 false",
		"edge.example.com AAAA 2001:db8::5 60 false",
		"edge.example.com AAAA 2001:db8::6 60 false",
		"edge.example.com TXT \"hello\" 300 false",
		"other.example.com A 192.0.2.99 300 false",
	}
	if got := f.snapshot(); !slices.Equal(got, want) {
		t.Errorf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Two A records rewritten (192.0.2.2's TTL, one stale one to .3), the
	// AAAA rewritten, one AAAA created, one A deleted: the deletion last.
	calls := f.takeCalls()
	var writes []string
	for _, c := range calls {
		if !strings.HasPrefix(c, "GET ") {
			writes = append(writes, strings.Fields(c)[0])
		}
	}
	if !slices.Equal(writes, []string{"PUT", "PUT", "PUT", "POST", "DELETE"}) {
		t.Errorf("calls %q: want 3 PUT, a POST, then a DELETE", calls)
	}
	// Again: nothing to change, so only reads.
	if err := u.Point(t.Context(), "edge.example.com", addrs("2001:db8::6", "192.0.2.3", "192.0.2.2", "2001:db8::5"), time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, c := range f.takeCalls() {
		if !strings.HasPrefix(c, "GET ") {
			t.Errorf("a second Point with the same addresses made %s", c)
		}
	}
	// Only IPv6 now: every A record goes.
	if err := u.Point(t.Context(), "edge.example.com", addrs("2001:db8::6"), 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	want = []string{
		"edge.example.com AAAA 2001:db8::6 120 false",
		"edge.example.com TXT \"hello\" 300 false",
		"other.example.com A 192.0.2.99 300 false",
	}
	if got := f.snapshot(); !slices.Equal(got, want) {
		t.Errorf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCloudflareZones checks the three ways to the zone: its ID, its name,
// and the host name's longest suffix that is a zone.
func TestCloudflareZones(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []string
		host  string
		zones int // zone list calls
	}{
		{"by suffix", nil, "a.b.example.com", 3},
		{"by name", []string{VarZone, "example.com"}, "a.b.example.com", 1},
		{"by ID", []string{VarCloudflareZoneID, fakeZoneID}, "a.b.example.com", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakeCloudflare(t, cfToken)
			u, err := New("cloudflare", cfEnv(f, tc.extra...))
			if err != nil {
				t.Fatal(err)
			}
			if err := u.Point(t.Context(), tc.host, addrs("192.0.2.7"), time.Minute); err != nil {
				t.Fatal(err)
			}
			if got, want := f.snapshot(), []string{tc.host + " A 192.0.2.7 60 false"}; !slices.Equal(got, want) {
				t.Errorf("records %q, want %q", got, want)
			}
			n := 0
			for _, c := range f.takeCalls() {
				if c == "GET /client/v4/zones" {
					n++
				}
			}
			if n != tc.zones {
				t.Errorf("%d zone lookups, want %d", n, tc.zones)
			}
		})
	}
	f := startFakeCloudflare(t, cfToken)
	u, err := New("cloudflare", cfEnv(f))
	if err != nil {
		t.Fatal(err)
	}
	err = u.Point(t.Context(), "edge.example.net", addrs("192.0.2.7"), time.Minute)
	if err == nil || !strings.Contains(err.Error(), "no zone of the token's account holds edge.example.net") {
		t.Errorf("Point in a zone not there = %v", err)
	}
}

// TestCloudflarePages checks that records beyond the first page are seen
// (and deleted).
func TestCloudflarePages(t *testing.T) {
	f := startFakeCloudflare(t, cfToken)
	for i := range 230 {
		f.add("edge.example.com", "A", fmt.Sprintf("10.0.%d.%d", i/200, i%200+1), 60, false)
	}
	u, err := New("cloudflare", cfEnv(f, VarCloudflareZoneID, fakeZoneID))
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Point(t.Context(), "edge.example.com", addrs("192.0.2.1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, want := f.snapshot(), []string{"edge.example.com A 192.0.2.1 60 false"}; !slices.Equal(got, want) {
		t.Errorf("%d records left, %q...; want %q", len(got), got[:min(3, len(got))], want)
	}
}

// TestCloudflareRefused checks a token the API refuses: reported in words,
// the token nowhere in the error, nothing changed.
func TestCloudflareRefused(t *testing.T) {
	f := startFakeCloudflare(t, "the-right-token")
	f.add("edge.example.com", "A", "192.0.2.1", 300, false)
	before := f.snapshot()
	for _, extra := range [][]string{nil, {VarCloudflareZoneID, fakeZoneID}} {
		u, err := New("cloudflare", cfEnv(f, extra...))
		if err != nil {
			t.Fatal(err)
		}
		err = u.Point(t.Context(), "edge.example.com", addrs("192.0.2.5"), time.Minute)
		t.Log(err)
		const want = "Cloudflare refused the API token (403 Forbidden: Authentication error (code 10000)): is it valid, with the Zone.DNS edit permission on this zone?"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Point = %v\nwant it to say %q", err, want)
		}
		if err != nil && (strings.Contains(err.Error(), cfToken) || strings.Contains(err.Error(), "the-right-token")) {
			t.Errorf("the error %q holds a token", err)
		}
	}
	if got := f.snapshot(); !slices.Equal(got, before) {
		t.Errorf("records changed to %q", got)
	}
}

func TestCloudflareTTL(t *testing.T) {
	f := startFakeCloudflare(t, cfToken)
	u, err := New("cloudflare", cfEnv(f))
	if err != nil {
		t.Fatal(err)
	}
	err = u.Point(t.Context(), "edge.example.com", addrs("192.0.2.5"), 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "shorter than Cloudflare's shortest, 1m0s") {
		t.Errorf("Point with a 30s TTL = %v", err)
	}
	if calls := f.takeCalls(); len(calls) != 0 {
		t.Errorf("calls %q before refusing the TTL", calls)
	}
}
