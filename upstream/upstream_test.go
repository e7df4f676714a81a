package upstream

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestAlternatives checks that alternatives are tried in order, and that one
// that failed goes last for the hold-down, then first again.
func TestAlternatives(t *testing.T) {
	var tried []string
	up := map[string]bool{"b:1": true, "c:1": true}
	now := time.Now()
	d := &Dialer{
		Targets:  map[string][]string{"chat": {"a:1", "b:1", "c:1"}},
		HoldDown: time.Hour,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			tried = append(tried, addr)
			if !up[addr] {
				return nil, errors.New("refused")
			}
			c, s := net.Pipe()
			s.Close()
			return c, nil
		},
	}
	dial := func() []string {
		tried = nil
		c, err := d.Dial(context.Background(), "chat", "", netip.AddrPort{})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		return tried
	}
	if got := dial(); len(got) != 2 || got[0] != "a:1" || got[1] != "b:1" {
		t.Fatalf("first dial tried %v", got)
	}
	if got := dial(); len(got) != 1 || got[0] != "b:1" {
		t.Fatalf("a:1 failed a moment ago, yet the dial tried %v", got)
	}
	// All down: every alternative is still tried, the failed ones last.
	up = map[string]bool{}
	if _, err := d.Dial(context.Background(), "chat", "", netip.AddrPort{}); err == nil {
		t.Fatal("dial succeeded with every alternative down")
	}
	// The hold-down passes: the configured order again.
	d.mu.Lock()
	for k := range d.failed {
		d.failed[k] = now.Add(-2 * time.Hour)
	}
	d.mu.Unlock()
	up = map[string]bool{"a:1": true}
	if got := dial(); len(got) != 1 || got[0] != "a:1" {
		t.Fatalf("after the hold-down the dial tried %v", got)
	}
	if _, err := d.Dial(context.Background(), "nope", "", netip.AddrPort{}); !errors.Is(err, ErrUnknownRoute) {
		t.Fatalf("unknown route: %v", err)
	}
}

// TestProxyHeader checks the header sent to the target, in both versions,
// with and without a known client.
func TestProxyHeader(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct {
		version byte
		client  string
	}{{1, "203.0.113.1:1111"}, {2, "203.0.113.1:1111"}, {2, "[2001:db8::1]:2222"}, {1, "[2001:db8::1]:2222"}, {2, ""}, {1, ""}} {
		d := &Dialer{Targets: map[string][]string{"chat": {ln.Addr().String()}}, ProxyProtocol: tc.version}
		var client netip.AddrPort
		if tc.client != "" {
			client = netip.MustParseAddrPort(tc.client)
		}
		c, err := d.Dial(context.Background(), "chat", "", client)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		h, err := proxyproto.Read(bufio.NewReader(s))
		c.Close()
		s.Close()
		if err != nil {
			t.Fatalf("v%d %q: %v", tc.version, tc.client, err)
		}
		if h.Version != tc.version {
			t.Errorf("v%d %q: got v%d", tc.version, tc.client, h.Version)
		}
		if tc.client == "" {
			if !h.Command.IsLocal() && h.TransportProtocol != proxyproto.UNSPEC {
				t.Errorf("v%d, no client: %+v, want LOCAL or UNKNOWN", tc.version, h)
			}
			continue
		}
		if got := h.SourceAddr.(*net.TCPAddr).AddrPort(); got != client {
			t.Errorf("v%d: source %v, want %v", tc.version, got, client)
		}
	}
}
