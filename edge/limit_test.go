package edge

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestPressureAt(t *testing.T) {
	for _, tc := range []struct{ max, want int }{{0, 0}, {1, 1}, {3, 3}, {6, 5}, {100, 80}, {27500, 22000}} {
		if got := pressureAt(tc.max); got != int64(tc.want) {
			t.Errorf("pressureAt(%d) = %d, want %d (80%%, rounded up)", tc.max, got, tc.want)
		}
	}
}

// TestFairShareCounter: under pressure an address above the mean per
// address is refused, one at it or below is not, nor is a new one; the hard
// cap holds with or without pressure; an IPv6 /64 is one address.
func TestFairShareCounter(t *testing.T) {
	var c ipCounter
	heavy := netip.MustParseAddr("203.0.113.1")
	for i := range 80 {
		if why := c.acquire(heavy, 0, i >= 80); why != capNone {
			t.Fatalf("connection %d of the only address refused: %v", i, why)
		}
	}
	// Alone, the heavy address is at the mean: not refused for its share.
	if why := c.acquire(heavy, 0, true); why != capNone {
		t.Fatalf("the only address refused under pressure: %v", why)
	}
	c.release(heavy)
	for i := range 10 {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		if why := c.acquire(a, 0, true); why != capNone {
			t.Errorf("new address %s refused under pressure: %v", a, why)
		}
	}
	if why := c.acquire(heavy, 0, true); why != capFairShare {
		t.Errorf("address holding 80 of 90 under pressure: %v, want the fair share's refusal", why)
	}
	if why := c.acquire(heavy, 0, false); why != capNone {
		t.Errorf("address holding 80 of 90 without pressure: %v, want it counted", why)
	}
	// Equal shares are all at the mean: none is refused.
	light := netip.AddrFrom4([4]byte{198, 51, 100, 0})
	if why := c.acquire(light, 0, true); why != capNone {
		t.Errorf("address holding 1 of 91: %v", why)
	}
	if why := c.acquire(light, 1, false); why != capPerIP {
		t.Errorf("address at the hard cap: %v, want its refusal", why)
	}
	if c.total != 92 || len(c.n) != 11 {
		t.Errorf("counted %d clients from %d addresses, want 92 from 11", c.total, len(c.n))
	}

	var v6 ipCounter
	a, b := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	v6.acquire(a, 2, false)
	if why := v6.acquire(b, 2, false); why != capNone {
		t.Fatalf("second from a /64: %v", why)
	}
	if why := v6.acquire(a, 2, false); why != capPerIP {
		t.Errorf("third from a /64 under a cap of 2: %v, want refused", why)
	}
	if why := v6.acquire(netip.MustParseAddr("2001:db8:1:3::1"), 2, false); why != capNone {
		t.Errorf("another /64: %v", why)
	}
	v6.release(a)
	v6.release(b)
	v6.release(b) // not counted any more: no effect
	v6.release(netip.MustParseAddr("2001:db8:1:3::1"))
	if v6.total != 0 || len(v6.n) != 0 {
		t.Errorf("after every release: %d clients from %d addresses", v6.total, len(v6.n))
	}
	if why := v6.acquire(netip.Addr{}, 1, true); why != capNone || v6.total != 0 {
		t.Errorf("the zero Addr: %v, counted %d", why, v6.total)
	}
}

// holdingEdge runs a server whose Connect holds every client open (until
// the test ends) and reports its address.
func holdingEdge(t *testing.T, mutate func(*Server)) (srv *Server, addr string, clients chan netip.Addr) {
	t.Helper()
	clients = make(chan netip.Addr, 128)
	var mu sync.Mutex
	var ups []net.Conn
	ln := listenLoopback(t)
	srv = &Server{
		Listeners: []Listener{{Listener: ln, Route: "chat"}},
		Connect: func(_ context.Context, r Request) (net.Conn, error) {
			up, far := net.Pipe()
			mu.Lock()
			ups = append(ups, far)
			mu.Unlock()
			clients <- r.Client.Addr()
			return up, nil
		},
		HandshakeTimeout: time.Minute,
		Log:              slog.New(slog.DiscardHandler),
	}
	mutate(srv)
	t.Cleanup(runServer(srv))
	// Before the server stops (cleanups run last in, first out): the relays
	// end at once rather than at the grace's end.
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range ups {
			c.Close()
		}
	})
	return srv, ln.Addr().String(), clients
}

// connect opens a WhatsApp client from the address from and reports whether
// the edge connected it to its route; a refused one is closed unread.
func connect(t *testing.T, addr, from string, clients chan netip.Addr) bool {
	t.Helper()
	c := dialFrom(t, from, addr)
	if _, err := c.Write(openingWeb); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	c.SetReadDeadline(time.Now().Add(time.Minute)) // fail, not hang
	go func() {
		defer close(closed)
		c.Read(make([]byte, 1))
	}()
	select {
	case got := <-clients:
		if got.String() != from {
			t.Fatalf("connected %v, want %s", got, from)
		}
		// Held open (the edge counts it until the test's end): only the
		// reader ends.
		c.SetReadDeadline(time.Unix(1, 0))
		<-closed
		return true
	case <-closed:
		return false
	}
}

// TestFairShare is the issue's: with a cap of 100 and one address holding
// 80, ten other addresses still get in, and the heavy address's next one
// is refused for its share; the metric and the refusals by cap say so.
func TestFairShare(t *testing.T) {
	srv, addr, clients := holdingEdge(t, func(s *Server) { s.MaxConns = 100 })
	for i := range 80 {
		if !connect(t, addr, "127.0.0.2", clients) {
			t.Fatalf("client %d of one address refused below 80%% of MaxConns", i)
		}
	}
	for i := range 10 {
		if from := fmt.Sprintf("127.0.1.%d", i+1); !connect(t, addr, from, clients) {
			t.Fatalf("client from %s refused while one address holds 80 of 100", from)
		}
	}
	if connect(t, addr, "127.0.0.2", clients) {
		t.Fatal("the address holding 80 of 90 got another one at 90% of MaxConns")
	}
	if got, want := srv.Refusals(), (Refusals{FairShare: 1}); got != want {
		t.Errorf("refusals %+v, want %+v", got, want)
	}
	if got := srv.Stats().Refused; got != 1 {
		t.Errorf("Stats().Refused = %d, want 1", got)
	}
}

// TestHardCaps: FERRY_EDGE_MAX_CONNS_PER_IP, when set, caps an address with
// no pressure at all, and FERRY_EDGE_MAX_CONNS refuses even a new address;
// each refusal counts under its cap.
func TestHardCaps(t *testing.T) {
	srv, addr, clients := holdingEdge(t, func(s *Server) { s.MaxConns, s.MaxConnsPerIP = 100, 2 })
	for range 2 {
		if !connect(t, addr, "127.0.0.2", clients) {
			t.Fatal("client under the per-address cap refused")
		}
	}
	if connect(t, addr, "127.0.0.2", clients) {
		t.Fatal("third client of an address with MaxConnsPerIP 2 connected")
	}
	if !connect(t, addr, "127.0.0.3", clients) {
		t.Fatal("another address refused")
	}
	if got, want := srv.Refusals(), (Refusals{MaxConnsPerIP: 1}); got != want {
		t.Errorf("refusals %+v, want %+v", got, want)
	}

	srv, addr, clients = holdingEdge(t, func(s *Server) { s.MaxConns = 2 })
	for _, from := range []string{"127.0.0.2", "127.0.0.3"} {
		if !connect(t, addr, from, clients) {
			t.Fatalf("client from %s refused under MaxConns", from)
		}
	}
	if connect(t, addr, "127.0.0.4", clients) {
		t.Fatal("a new address connected past MaxConns")
	}
	if got, want := srv.Refusals(), (Refusals{MaxConns: 1}); got != want {
		t.Errorf("refusals %+v, want %+v", got, want)
	}
}

// records keeps the log records it handles.
type records struct {
	mu sync.Mutex
	rs []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *records) WithGroup(string) slog.Handler            { return h }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rs = append(h.rs, r.Clone())
	return nil
}

func (h *records) warns() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ws []slog.Record
	for _, r := range h.rs {
		if r.Level == slog.LevelWarn {
			ws = append(ws, r)
		}
	}
	return ws
}

// refusedIn is a WARN's count of refusals, and its attributes by key
// (groups flattened as group.key).
func refusedIn(t *testing.T, r slog.Record) (int64, map[string]slog.Value) {
	t.Helper()
	attrs := map[string]slog.Value{}
	var add func(prefix string, a slog.Attr)
	add = func(prefix string, a slog.Attr) {
		if a.Value.Kind() == slog.KindGroup {
			for _, g := range a.Value.Group() {
				add(prefix+a.Key+".", g)
			}
			return
		}
		attrs[prefix+a.Key] = a.Value
	}
	r.Attrs(func(a slog.Attr) bool { add("", a); return true })
	n, ok := attrs["refused"]
	if !ok {
		t.Fatalf("WARN %q without a count of refusals", r.Message)
	}
	return n.Int64(), attrs
}

// TestRefusalWarn: the first refusal gets a WARN at once, more within the
// minute none until the minute is over, then one counting them all; a
// quiet minute sends none; each names the caps that refused and their
// values, and no address.
func TestRefusalWarn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &records{}
		s := &Server{MaxConns: 100, MaxConnsPerIP: 7, Log: slog.New(h)}
		s.refusals.kick = make(chan struct{}, 1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.warnRefusals(ctx)
		}()
		defer func() {
			cancel()
			<-done
		}()

		s.refusals.add(capFairShare)
		synctest.Wait()
		if n := len(h.warns()); n != 1 {
			t.Fatalf("%d WARNs after the first refusal, want 1 at once", n)
		}
		for range 5 {
			s.refusals.add(capMaxConns)
		}
		s.refusals.add(capPerIP)
		time.Sleep(RefusalWarnEvery - time.Second)
		synctest.Wait()
		if n := len(h.warns()); n != 1 {
			t.Fatalf("%d WARNs within the first minute, want 1", n)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		ws := h.warns()
		if len(ws) != 2 {
			t.Fatalf("%d WARNs after a minute of refusals, want 2", len(ws))
		}
		var sum int64
		for _, w := range ws {
			n, _ := refusedIn(t, w)
			sum += n
		}
		if sum != 7 {
			t.Errorf("WARNs counted %d refusals, want all 7", sum)
		}
		_, last := refusedIn(t, ws[1])
		if last["max_conns.refused"].Int64() != 5 || last["max_conns.cap"].Int64() != 100 || last["max_conns_per_ip.cap"].Int64() != 7 {
			t.Errorf("second WARN's caps: %v", last)
		}
		if _, first := refusedIn(t, ws[0]); first["fair_share.above_conns"].Int64() != 80 {
			t.Errorf("first WARN's caps: %v", first)
		}
		for _, w := range ws {
			w.Attrs(func(a slog.Attr) bool {
				if _, err := netip.ParseAddr(a.Value.String()); err == nil {
					t.Errorf("WARN holds an address: %v", a)
				}
				return true
			})
		}

		time.Sleep(5 * RefusalWarnEvery)
		synctest.Wait()
		if n := len(h.warns()); n != 2 {
			t.Fatalf("%d WARNs after quiet minutes, want still 2", n)
		}
		// After a quiet while, the next refusal is told at once.
		s.refusals.add(capMaxConns)
		synctest.Wait()
		ws = h.warns()
		if len(ws) != 3 {
			t.Fatalf("%d WARNs after a refusal following quiet minutes, want 3", len(ws))
		}
		for i := 1; i < len(ws); i++ {
			if gap := ws[i].Time.Sub(ws[i-1].Time); gap < RefusalWarnEvery {
				t.Errorf("WARNs %d and %d %v apart, want at least %v", i-1, i, gap, RefusalWarnEvery)
			}
		}
		if s.Refusals().Total() != 8 {
			t.Errorf("Refusals %+v, want 8 in all", s.Refusals())
		}
	})
}
