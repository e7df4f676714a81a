package tunnel

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"ferry/internal/unbound"
)

// dnsThrough returns a dialer of ln's zone through the resolvers given,
// at rate queries a second to each (0: the default).
func dnsThrough(t *testing.T, ln Listener, rate float64, resolvers ...string) *DNSDialer {
	t.Helper()
	u, err := ParseURL(dnsDialURL(ln, resolvers...))
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDialer(u, transportEnd(false))
	if err != nil {
		t.Fatal(err)
	}
	dd := d.(*DNSDialer)
	dd.Rate = rate
	return dd
}

// testRate is the queries a second that the tests through unbound allow:
// unbound on loopback takes far more than a public resolver would.
const testRate = 3000

// TestDNSThroughUnbound1MiB: 1 MiB up and back down through a real
// resolver, intact.
func TestDNSThroughUnbound1MiB(t *testing.T) {
	ln := dnsListen(t)
	r := unbound.Start(t, "t.example.", ln.Addr().String(), unbound.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	edge, origin := dialAccept(t, ctx, ln, dnsThrough(t, ln, testRate, r.Addr))
	defer edge.Close()
	defer origin.Close()
	go echo(ctx, origin)
	start := time.Now()
	roundTrip(t, ctx, edge, 1<<20)
	t.Logf("1 MiB up and down in %v, %d queries", time.Since(start).Round(time.Millisecond), ln.Server().TunnelQueries.Load())
}

// TestDNSChat: 20 chat-like streams, each sending 200 bytes every 10 s for
// a minute and reading them back, none lost, at the default rate limit. It
// runs beside the package's other tests: a minute of real time, as
// testing/synctest does not fit (unbound is a real process on real
// sockets).
func TestDNSChat(t *testing.T) {
	t.Parallel()
	const streams, chatRounds, chatInterval = 20, 6, 10 * time.Second
	ln := dnsListen(t)
	r := unbound.Start(t, "t.example.", ln.Addr().String(), unbound.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := dnsThrough(t, ln, 0, r.Addr)
	edge, origin := dialAccept(t, ctx, ln, d)
	defer edge.Close()
	defer origin.Close()
	defer func() { logCounters(t, d, ln) }()
	var echoes sync.WaitGroup
	for range streams {
		echoes.Add(1)
		go func() {
			defer echoes.Done()
			echo(ctx, origin)
		}()
	}
	var wg sync.WaitGroup
	var worst atomic.Int64
	errs := make(chan error, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- chat(ctx, edge, i, chatRounds, chatInterval, &worst)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	echoes.Wait()
	t.Logf("%d streams × %d messages of 200 bytes, the slowest round trip %v", streams, chatRounds, time.Duration(worst.Load()).Round(time.Millisecond))
}

// chat sends rounds messages of 200 bytes on a new stream, one every
// interval, and reads each back before the next.
func chat(ctx context.Context, s Session, id, rounds int, interval time.Duration, worst *atomic.Int64) error {
	st, err := s.OpenStream(ctx)
	if err != nil {
		return fmt.Errorf("stream %d: %w", id, err)
	}
	defer st.Close()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	msg, got := make([]byte, 200), make([]byte, 200)
	for n := range rounds {
		rand.Read(msg)
		start := time.Now()
		if _, err := st.Write(msg); err != nil {
			return fmt.Errorf("stream %d, message %d: %w", id, n, err)
		}
		if _, err := io.ReadFull(st, got); err != nil {
			return fmt.Errorf("stream %d, message %d: %w", id, n, err)
		}
		if string(got) != string(msg) {
			return fmt.Errorf("stream %d, message %d came back changed", id, n)
		}
		for d := int64(time.Since(start)); ; {
			w := worst.Load()
			if d <= w || worst.CompareAndSwap(w, d) {
				break
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	st.CloseWrite()
	if _, err := io.ReadAll(st); err != nil {
		return fmt.Errorf("stream %d: %w", id, err)
	}
	return nil
}

// TestDNSResolverRestart: unbound restarted (its cache lost) in the middle
// of a transfer; the session lives on and the bytes arrive intact.
func TestDNSResolverRestart(t *testing.T) {
	ln := dnsListen(t)
	r := unbound.Start(t, "t.example.", ln.Addr().String(), unbound.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	edge, origin := dialAccept(t, ctx, ln, dnsThrough(t, ln, testRate, r.Addr))
	defer edge.Close()
	defer origin.Close()
	go echo(ctx, origin)
	done := make(chan struct{})
	go func() {
		defer close(done)
		roundTrip(t, ctx, edge, 256<<10)
	}()
	// Restart once a quarter of the queries are through.
	for ln.Server().TunnelQueries.Load() < 800 {
		select {
		case <-done:
			t.Fatal("the transfer ended before the restart")
		case <-time.After(10 * time.Millisecond):
		}
	}
	r.Restart()
	<-done
	select {
	case <-edge.Done():
		t.Error("the session ended")
	default:
	}
}

// TestDNSDeadResolver: of two resolvers, one answers nothing; the session
// comes up and carries through the other, and the dead one is set aside
// after a few queries.
func TestDNSDeadResolver(t *testing.T) {
	ln := dnsListen(t)
	r := unbound.Start(t, "t.example.", ln.Addr().String(), unbound.Options{})
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var toDead atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := dead.ReadFrom(buf); err != nil {
				return
			}
			toDead.Add(1)
		}
	}()
	defer dead.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := dnsThrough(t, ln, testRate, dead.LocalAddr().String(), r.Addr)
	edge, origin := dialAccept(t, ctx, ln, d)
	defer edge.Close()
	defer origin.Close()
	defer func() { logCounters(t, d, ln) }()
	go echo(ctx, origin)
	roundTrip(t, ctx, edge, 128<<10)
	total := ln.Server().TunnelQueries.Load()
	if toDead.Load() > total/10 {
		t.Errorf("the dead resolver got %d queries, the live one %d", toDead.Load(), total)
	}
	t.Logf("the dead resolver got %d queries, the live one %d", toDead.Load(), total)
}

// TestDNSForgedThroughUnbound: through the resolver, a forged tunnel query
// (a name of the tunnel's form, without the secret's MAC) gets the answer
// of any unknown name under the zone, and the zone answers SOA and NS as an
// authoritative server.
func TestDNSForgedThroughUnbound(t *testing.T) {
	ln := dnsListen(t)
	r := unbound.Start(t, "t.example.", ln.Addr().String(), unbound.Options{})
	ask := func(name string, qt uint16) *dns.Msg {
		t.Helper()
		q := new(dns.Msg)
		q.SetQuestion(name, qt)
		q.SetEdns0(4096, false)
		a, err := dns.Exchange(q, r.Addr)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	forged := "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.t.example."
	for _, name := range []string{forged, "www.t.example.", "x1y2z3.t.example."} {
		a := ask(name, dns.TypeTXT)
		if a.Rcode != dns.RcodeSuccess || len(a.Answer) != 0 || len(a.Ns) != 1 || a.Ns[0].Header().Rrtype != dns.TypeSOA {
			t.Errorf("%s: %v", name, a)
		}
	}
	if a := ask("t.example.", dns.TypeSOA); len(a.Answer) != 1 || a.Answer[0].Header().Rrtype != dns.TypeSOA {
		t.Errorf("SOA: %v", a)
	}
	if a := ask("t.example.", dns.TypeNS); len(a.Answer) != 1 || a.Answer[0].(*dns.NS).Ns != "ns.t.example." {
		t.Errorf("NS: %v", a)
	}
	if ln.Server().TunnelQueries.Load() != 0 {
		t.Error("a forged query was taken")
	}
	// Over TCP too, straight to the origin, as a scanner would ask.
	c := &dns.Client{Net: "tcp"}
	q := new(dns.Msg)
	q.SetQuestion("t.example.", dns.TypeSOA)
	if a, _, err := c.Exchange(q, ln.Addr().String()); err != nil || len(a.Answer) != 1 || !a.Authoritative {
		t.Errorf("SOA over TCP: %v, %v", a, err)
	}
}

var _ = errors.Is

// logCounters logs what the client and the server counted.
func logCounters(t *testing.T, d *DNSDialer, ln *DNSListener) {
	c, s := d.Client.Load(), ln.Server()
	t.Logf("client: %d queries sent (%d polls), %d answered (%d empty NOERROR), %d timed out, %d truncated, %d datagrams dropped; server: %d tunnel queries, %d datagrams dropped",
		c.Sent.Load(), c.Polls.Load(), c.Answered.Load(), c.NoData.Load(), c.Timeouts.Load(), c.Truncated.Load(), c.Dropped.Load(), s.TunnelQueries.Load(), s.Dropped.Load())
}
