package e2e

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"ferry/cert"
	"ferry/edge"
	"ferry/internal/fake"
	"ferry/pool"
	"ferry/tunnel"
	"ferry/upstream"
)

// mitmTLS is a man in the middle with its own certificate: it ends the
// edge's TLS and opens its own to the origin, passing bytes between.
func mitmTLS(t *testing.T, originAddr string) string {
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	srv := fake.Start(t, func(c net.Conn) {
		in := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{crt}, NextProtos: []string{"http/1.1"}})
		out, err := tls.Dial("tcp", originAddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err != nil {
			return
		}
		defer out.Close()
		go io.Copy(out, in)
		io.Copy(in, out)
	})
	return srv.Addr()
}

// mitmQUIC is the same over QUIC: it relays the edge's streams, the hello
// first, over its own connection to the origin.
func mitmQUIC(t *testing.T, originAddr string) string {
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}, NextProtos: []string{tunnel.ALPN}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer in.CloseWithError(0, "")
				out, err := quic.DialAddr(ctx, originAddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{tunnel.ALPN}}, nil)
				if err != nil {
					return
				}
				defer out.CloseWithError(0, "")
				// The origin keeps a stranger's connection as an HTTP/3
				// server does: it ends here with the edge's.
				context.AfterFunc(in.Context(), func() { out.CloseWithError(0, "") })
				a, err := in.AcceptStream(ctx)
				if err != nil {
					return
				}
				b, err := out.OpenStreamSync(ctx)
				if err != nil {
					return
				}
				go io.Copy(b, a)
				io.Copy(a, b)
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestManInTheMiddle checks that a man in the middle with its own
// certificate gets no session, over QUIC and over wss straight to the
// origin: the origin finds the edge's hello bound to another TLS session.
// (That the edge, too, refuses an origin hello bound to another session is
// tested in package tunnel: here the origin refuses first.)
func TestManInTheMiddle(t *testing.T) {
	for _, tc := range []struct {
		scheme string
		mitm   func(t *testing.T, originAddr string) string
	}{{"wss", mitmTLS}, {"quic", mitmQUIC}} {
		scheme, mitm := tc.scheme, tc.mitm
		t.Run(scheme, func(t *testing.T) {
			o := startOrigin(t, scheme, "127.0.0.1:0", map[string][]string{"chat": {"127.0.0.1:1"}})
			// The origin's own URL, with the man in the middle's address.
			u, err := tunnel.ParseURL(o.url)
			if err != nil {
				t.Fatal(err)
			}
			u.Host = mitm(t, o.addr)
			// Over QUIC the origin answers a wrong proof with nothing (it
			// is HTTP/3's): the edge gives up at the end of ctx.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			s, err := dialer(t, u.String()).Dial(ctx)
			if err == nil {
				s.Close()
				t.Fatal("the edge accepted a man in the middle")
			}
			t.Logf("edge: %v", err)
			if n := o.srv.Stats().Sessions; n != 0 {
				t.Fatalf("the origin accepted %d sessions through the man in the middle", n)
			}
			if o.ws != nil && o.ws.AuthFailures.Load() != 1 {
				t.Fatalf("the origin counted %d authentication failures, want 1", o.ws.AuthFailures.Load())
			}
			// Without the man in the middle, the same dial works.
			s, err = dialer(t, o.url).Dial(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
		})
	}
}

// TestQUICRefusesStrangers checks that a QUIC client without the secret
// gets what an HTTP/3 server gives it, and no session: 34 bytes of zeros,
// a hello with a wrong proof and no hello frame (tunnel/h3hello.go), are an
// empty DATA frame first, which closes the connection with
// H3_FRAME_UNEXPECTED (package tunnel compares it with quic-go's server).
func TestQUICRefusesStrangers(t *testing.T) {
	echo := fake.Start(t, fake.Echo)
	o := startOrigin(t, "quic", "127.0.0.1:0", map[string][]string{"chat": {echo.Addr()}})
	ctx := context.Background()
	// From clientIP: the refusal's log line must not show it.
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(clientIP)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: pc}
	defer pc.Close()
	defer tr.Close()
	to, err := net.ResolveUDPAddr("udp", o.addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tr.Dial(ctx, to, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{tunnel.ALPN}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Write(make([]byte, 34)) // a hello with a wrong proof
	<-conn.Context().Done()
	var appErr *quic.ApplicationError
	if err := context.Cause(conn.Context()); !errors.As(err, &appErr) || appErr.ErrorCode != 0x105 {
		t.Fatalf("closed with %v, want H3_FRAME_UNEXPECTED", err)
	}
	if n := o.srv.Stats().Sessions; n != 0 {
		t.Fatalf("%d sessions", n)
	}
}

// TestManyQUICStreams runs 1,000 clients at once over one QUIC connection.
func TestManyQUICStreams(t *testing.T) {
	echo := fake.Start(t, fake.Echo)
	o := startOrigin(t, "quic", "127.0.0.1:0", map[string][]string{"chat": {echo.Addr()}})
	e := startEdge(t, o.url, "chat")
	const clients = 1000
	conns := make([]net.Conn, clients)
	for i := range conns {
		c, err := clientDialer.Dial("tcp", e.addrs["chat"])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	// Every client first sends, so all 1,000 streams are open at once
	// before any of them is answered.
	for i, c := range conns {
		if _, err := c.Write([]byte{byte(i), byte(i >> 8)}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var bad atomic.Int64
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 2)
			if _, err := io.ReadFull(c, b); err != nil || b[0] != byte(i) || b[1] != byte(i>>8) {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d of %d clients failed", n, clients)
	}
	if n := o.srv.Stats().Streams; n != clients {
		t.Errorf("%d streams open at the origin, want %d", n, clients)
	}
}

// udpRelay passes datagrams between one client and target, or drops them
// all while drop is set: a path on which UDP gets blocked.
type udpRelay struct {
	pc   net.PacketConn
	drop atomic.Bool
}

func startUDPRelay(t *testing.T, target string) *udpRelay {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &udpRelay{pc: pc}
	dst, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var client atomic.Pointer[net.Addr]
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // client → target
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			client.Store(&from)
			if !r.drop.Load() {
				up.WriteTo(buf[:n], dst)
			}
		}
	}()
	go func() { // target → client
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, _, err := up.ReadFrom(buf)
			if err != nil {
				return
			}
			if c := client.Load(); c != nil && !r.drop.Load() {
				pc.WriteTo(buf[:n], *c)
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		up.Close()
		wg.Wait()
	})
	return r
}

// TestFallback checks that an edge whose preferred origin is QUIC uses
// WebSocket while QUIC does not get through, moves back to QUIC when it
// does, and off it again within 10 s when UDP is blocked mid-session; live
// clients on a healthy session are not disturbed by a switch.
func TestFallback(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out QUIC's idle timeout")
	}
	echo := fake.Start(t, fake.Echo)
	targets := map[string][]string{"chat": {echo.Addr()}}
	q := startOrigin(t, "quic", "127.0.0.1:0", targets)
	w := startOrigin(t, "ws", "127.0.0.1:0", targets)
	relay := startUDPRelay(t, q.addr)
	relay.drop.Store(true) // QUIC is blocked from the start

	start := time.Now()
	e := startEdgeOrigins(t, &edge.Tunnels{Pool: pool.Pool{Peers: []pool.Peer{
		{Name: "quic", Dialer: dialer(t, "quic://"+relay.pc.LocalAddr().String())},
		{Name: "ws", Dialer: dialer(t, w.url)},
	}}}, &edge.Server{}, lspec{name: "chat", route: "chat"})

	// via connects a client, echoes once within a second, and says which
	// origin carried it; the client stays open until the test ends.
	via := func() (net.Conn, string) { return e.via(t, time.Second, carrier{"quic", q}, carrier{"ws", w}) }
	// await waits until a new client goes via want, within limit of since.
	await := func(want string, since time.Time, limit time.Duration) net.Conn {
		t.Helper()
		for {
			changed := e.tunnels.Changed()
			c, got := via()
			if got == want {
				t.Logf("clients go via %s after %v", want, time.Since(since).Round(10*time.Millisecond))
				return c
			}
			if time.Since(since) > limit {
				t.Fatalf("clients still go via %s after %v, want %s", got, limit, want)
			}
			if got != "none" {
				select {
				case <-changed:
				case <-time.After(limit - time.Since(since)):
				}
			}
		}
	}
	wsClient := await("ws", start, 10*time.Second)

	relay.drop.Store(false) // QUIC returns
	await("quic", time.Now(), time.Minute)
	if got, err := echoOnce(wsClient, []byte("still there")); err != nil || string(got) != "still there" {
		t.Fatalf("the client on the WebSocket session was disturbed by the switch: %q, %v", got, err)
	}

	relay.drop.Store(true) // UDP blocked mid-session
	await("ws", time.Now(), 10*time.Second)
}

// TestUDPBlockedNewClients checks what clients arriving just after UDP to
// the origin is blocked mid-session see, with the product's wiring: one
// origin that listens on QUIC and on WebSocket, and an edge that lists its
// QUIC URL first (through a relay the test cuts) and its WebSocket one
// second, as FERRY_EDGE_ORIGINS would. For the 10 s after the cut (past
// QUIC's idle timeout, in which the QUIC sessions still look up), a new
// client every 250 ms must get its echo within 3 s, and none may be reset
// or refused.
func TestUDPBlockedNewClients(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out QUIC's idle timeout")
	}
	echo := fake.Start(t, fake.Echo)
	o, urls := startOriginOn(t, &upstream.Dialer{Targets: fixed(map[string][]string{"chat": {echo.Addr()}}), Timeout: time.Second},
		listenAt{"quic", "127.0.0.1:0"}, listenAt{"ws", "127.0.0.1:0"})
	relay := startUDPRelay(t, o.addr)
	e := startEdgeOrigins(t, &edge.Tunnels{Pool: pool.Pool{Peers: []pool.Peer{
		{Name: "quic", Dialer: dialer(t, "quic://"+relay.pc.LocalAddr().String())},
		{Name: "ws", Dialer: dialer(t, urls[1])},
	}}}, &edge.Server{}, lspec{name: "chat", route: "chat"})
	e.awaitSessions(t, 0, pool.DefaultSize)
	e.awaitSessions(t, 1, pool.DefaultSize)
	c := e.dial(t, "chat")
	if got, err := echoOnce(c, []byte("ping")); err != nil || string(got) != "ping" {
		t.Fatalf("before the cut: %q, %v", got, err)
	}
	c.Close()

	const (
		window  = 10 * time.Second
		every   = 250 * time.Millisecond
		allowed = 3 * time.Second
	)
	type result struct {
		at, took time.Duration // since the cut
		err      error
	}
	results := make(chan result, int(window/every)+1)
	var wg sync.WaitGroup
	cut := time.Now()
	relay.drop.Store(true)
	tick := time.NewTicker(every) // the clients' arrivals, not a wait for anything
	defer tick.Stop()
	for time.Since(cut) < window {
		wg.Go(func() {
			at := time.Since(cut)
			c, err := clientDialer.Dial("tcp", e.addrs["chat"])
			if err != nil {
				results <- result{at, 0, err}
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(2 * allowed))
			start := time.Now()
			got, err := echoOnce(c, []byte("ping"))
			if err == nil && string(got) != "ping" {
				err = fmt.Errorf("echo %q", got)
			}
			results <- result{at, time.Since(start), err}
		})
		<-tick.C
	}
	wg.Wait()
	close(results)
	var rs []result
	for r := range results {
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b result) int { return cmp.Compare(a.at, b.at) })
	var bad int
	for _, r := range rs {
		switch {
		case errors.Is(r.err, syscall.ECONNRESET):
			t.Errorf("a client arriving %v after the cut was reset after %v", r.at.Round(time.Millisecond), r.took.Round(time.Millisecond))
		case r.err != nil:
			t.Errorf("a client arriving %v after the cut failed after %v: %v", r.at.Round(time.Millisecond), r.took.Round(time.Millisecond), r.err)
		case r.took > allowed:
			t.Errorf("a client arriving %v after the cut waited %v for its echo", r.at.Round(time.Millisecond), r.took.Round(time.Millisecond))
		default:
			continue
		}
		bad++
	}
	t.Logf("%d of %d clients in the %v after the cut failed or waited over %v; QUIC sessions up now: %d", bad, len(rs), window, allowed, e.tunnels.SessionsUp(0))
}
