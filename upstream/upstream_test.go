package upstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"go.uber.org/goleak"

	"ferry/config"
	"ferry/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// targets parses FERRY_ORIGIN_TARGETS's form.
func targets(t *testing.T, v string) config.Targets {
	t.Helper()
	ts, err := config.ParseTargets(v)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// TestAlternatives checks that alternatives are tried in order, and that one
// that failed goes last for the hold-down, then first again.
func TestAlternatives(t *testing.T) {
	var tried []string
	up := map[string]bool{"b:1": true, "c:1": true}
	now := time.Now()
	d := &Dialer{
		Targets:  targets(t, "chat=a:1|b:1|c:1"),
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
		d := &Dialer{Targets: targets(t, "chat="+ln.Addr().String()), ProxyProtocol: tc.version}
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

// fakeDNS is a Dialer's DialContext that resolves names by a table, to
// loopback listeners, dials IP literals as they are, and records every
// address it is asked for.
type fakeDNS struct {
	mu    sync.Mutex
	hosts map[string]string // HOST:PORT → the listener's 127.0.0.1:PORT
	tried []string
}

func (f *fakeDNS) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	f.mu.Lock()
	f.tried = append(f.tried, addr)
	to, ok := f.hosts[addr]
	f.mu.Unlock()
	if _, err := netip.ParseAddrPort(addr); err == nil {
		to, ok = addr, true
	}
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: addr, IsNotFound: true}
	}
	return (&net.Dialer{}).DialContext(ctx, network, to)
}

func (f *fakeDNS) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tried
	f.tried = nil
	return t
}

// target is a fake target: it accepts connections and hands over what each
// sends.
type target struct {
	ln  net.Listener
	got chan []byte
}

func newTarget(t *testing.T) *target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{ln: ln, got: make(chan []byte, 8)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, _ := io.ReadAll(c)
			c.Close()
			tg.got <- b
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return tg
}

func (tg *target) addr() string { return tg.ln.Addr().String() }

// send dials route for serverName, sends "hello" and returns what the
// target tg received.
func send(t *testing.T, d *Dialer, route, serverName string, tg *target) []byte {
	t.Helper()
	c, err := d.Dial(context.Background(), route, serverName, netip.MustParseAddrPort("203.0.113.1:1111"))
	if err != nil {
		t.Fatalf("route %s, name %q: %v", route, serverName, err)
	}
	io.WriteString(c, "hello")
	c.Close()
	return <-tg.got
}

// TestServerName checks that a *.SUFFIX:PORT alternative dials the client's
// server name, that a name outside every pattern, or any name on a route
// without one, is refused before anything is dialled, and that a client
// without a name skips the pattern.
func TestServerName(t *testing.T) {
	media, fallback, chat, other := newTarget(t), newTarget(t), newTarget(t), newTarget(t)
	dns := &fakeDNS{hosts: map[string]string{
		"mmg.whatsapp.test:443":              media.addr(),
		"media-fra5-1.cdn.whatsapp.test:443": media.addr(),
		"down.whatsapp.test:443":             "127.0.0.1:1", // nothing listens
		"x.other.test:8443":                  other.addr(),
		"whatsapp.test:443":                  fallback.addr(),
		"g.whatsapp.test:5222":               chat.addr(),
	}}
	m := metrics.New("origin", "test")
	d := &Dialer{
		Targets: targets(t, "media=*.whatsapp.test:443|whatsapp.test:443,"+
			"two=*.other.test:8443|*.whatsapp.test:443,"+
			"names=*.whatsapp.test:443,"+
			"chat=g.whatsapp.test:5222"),
		DialContext: dns.dial,
		Timeout:     time.Second,
		Metrics:     m,
	}
	for _, tc := range []struct {
		route, name string
		tried       []string
		tg          *target
	}{
		{"media", "mmg.whatsapp.test", []string{"mmg.whatsapp.test:443"}, media},
		{"media", "MMG.WhatsApp.test", []string{"mmg.whatsapp.test:443"}, media},
		{"media", "media-fra5-1.cdn.whatsapp.test", []string{"media-fra5-1.cdn.whatsapp.test:443"}, media},
		{"media", "", []string{"whatsapp.test:443"}, fallback},
		// A name that fails falls back to the fixed alternative.
		{"media", "down.whatsapp.test", []string{"down.whatsapp.test:443", "whatsapp.test:443"}, fallback},
		// Its hold-down is its own: other names still go first.
		{"media", "mmg.whatsapp.test", []string{"mmg.whatsapp.test:443"}, media},
		{"two", "x.other.test", []string{"x.other.test:8443"}, other},
		{"two", "mmg.whatsapp.test", []string{"mmg.whatsapp.test:443"}, media},
		{"chat", "", []string{"g.whatsapp.test:5222"}, chat},
		// A route with no pattern is never steered by a name: it dials
		// its own alternatives.
		{"chat", "mmg.whatsapp.test", []string{"g.whatsapp.test:5222"}, chat},
	} {
		send(t, d, tc.route, tc.name, tc.tg)
		if got := dns.take(); !slices.Equal(got, tc.tried) {
			t.Errorf("route %s, name %q: dialled %v, want %v", tc.route, tc.name, got, tc.tried)
		}
	}

	for _, tc := range []struct{ route, name string }{
		{"media", "evil.example"},
		{"media", "whatsapp.test"}, // the suffix itself is not under it
		{"media", "mmg.whatsapp.test.evil.example"},
		{"media", "127.0.0.1"},
		{"media", "evil.example:443#.whatsapp.test"},
		{"media", "evil_.whatsapp.test"},
		{"media", "mmg..whatsapp.test"},
		{"two", "evil.example"},
		{"names", ""}, // nothing to dial without a name
	} {
		c, err := d.Dial(context.Background(), tc.route, tc.name, netip.AddrPort{})
		if err == nil {
			c.Close()
		}
		if !errors.Is(err, ErrNameNotAllowed) {
			t.Errorf("route %s, name %q: %v, want ErrNameNotAllowed", tc.route, tc.name, err)
		}
		if got := dns.take(); len(got) != 0 {
			t.Errorf("route %s, name %q: refused, yet dialled %v", tc.route, tc.name, got)
		}
	}

	// Metrics name a pattern's dials by the pattern, never by the names
	// clients sent.
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, f := range fams {
		if f.GetName() != "ferry_target_dials_total" {
			continue
		}
		for _, mt := range f.GetMetric() {
			var l []string
			for _, lp := range mt.GetLabel() {
				l = append(l, lp.GetName()+"="+lp.GetValue())
			}
			labels = append(labels, strings.Join(l, " "))
		}
	}
	sort.Strings(labels)
	want := []string{
		"result=failed route=media target=*.whatsapp.test:443",
		"result=ok route=chat target=g.whatsapp.test:5222",
		"result=ok route=media target=*.whatsapp.test:443",
		"result=ok route=media target=whatsapp.test:443",
		"result=ok route=two target=*.other.test:8443",
		"result=ok route=two target=*.whatsapp.test:443",
	}
	if !slices.Equal(labels, want) {
		t.Errorf("ferry_target_dials_total series:\n%s\nwant:\n%s", strings.Join(labels, "\n"), strings.Join(want, "\n"))
	}
}

// TestRouteProxyHeader checks which routes' targets get a PROXY header:
// FERRY_ORIGIN_PROXY_PROTOCOL's on chat, none on media (a route named media
// or with a pattern), and a route's ?proxy= option over both.
func TestRouteProxyHeader(t *testing.T) {
	tg := newTarget(t)
	a := tg.addr()
	dns := &fakeDNS{hosts: map[string]string{"mmg.whatsapp.test:443": a}}
	ts := targets(t, "chat="+a+",media="+a+",pattern=*.whatsapp.test:443|"+a+
		",off="+a+"?proxy=off,v2="+a+"?proxy=v2,mediav1=*.whatsapp.test:443|"+a+"?proxy=v1")
	for _, tc := range []struct {
		def         byte
		route, name string
		want        byte // PROXY header version, 0 for none
	}{
		{1, "chat", "", 1},
		{2, "chat", "", 2},
		{0, "chat", "", 0},
		{1, "media", "", 0},
		{1, "pattern", "mmg.whatsapp.test", 0},
		{1, "pattern", "", 0},
		{1, "off", "", 0},
		{1, "v2", "", 2},
		{0, "v2", "", 2},
		{0, "mediav1", "mmg.whatsapp.test", 1},
		{2, "mediav1", "", 1},
	} {
		d := &Dialer{Targets: ts, ProxyProtocol: tc.def, DialContext: dns.dial}
		b := send(t, d, tc.route, tc.name, tg)
		if tc.want == 0 {
			if string(b) != "hello" {
				t.Errorf("FERRY_ORIGIN_PROXY_PROTOCOL=%d, route %s: target got %q, want the client's bytes alone", tc.def, tc.route, b)
			}
			continue
		}
		if tc.want == 1 && !bytes.HasPrefix(b, []byte("PROXY TCP4 203.0.113.1 127.0.0.1 1111 ")) {
			t.Errorf("route %s: target got %q, want a PROXY v1 line first", tc.route, b)
		}
		r := bufio.NewReader(bytes.NewReader(b))
		h, err := proxyproto.Read(r)
		if err != nil {
			t.Errorf("FERRY_ORIGIN_PROXY_PROTOCOL=%d, route %s: %q: %v", tc.def, tc.route, b, err)
			continue
		}
		rest, _ := io.ReadAll(r)
		if h.Version != tc.want || string(rest) != "hello" {
			t.Errorf("FERRY_ORIGIN_PROXY_PROTOCOL=%d, route %s: PROXY v%d then %q, want v%d then hello", tc.def, tc.route, h.Version, rest, tc.want)
		}
	}
}
