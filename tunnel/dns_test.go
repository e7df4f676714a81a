package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"

	"ferry/dnstun/reliable"
)

// dnsTestMain wires the dns transport in for this package's tests, and
// returns the leak checks' exceptions for kcp-go's goroutines.
func dnsTestMain() []goleak.Option {
	SetDNSStreams(DNSStreamsOf(reliable.Dial, reliable.Listen))
	var opts []goleak.Option
	for _, f := range reliable.LeakedFunctions {
		opts = append(opts, goleak.IgnoreAnyFunction(f))
	}
	return opts
}

// dnsListen opens a dns listener for t.example on loopback.
func dnsListen(t *testing.T) *DNSListener {
	t.Helper()
	ln := listenOn(t, URL{Scheme: "dns", Host: "127.0.0.1:0", Path: "/t.example"}, ListenOptions{End: transportEnd(true)})
	return ln.(*DNSListener)
}

// dnsDialURL dials ln's zone through the resolvers given, ln itself if none.
func dnsDialURL(ln Listener, resolvers ...string) string {
	if len(resolvers) == 0 {
		resolvers = []string{ln.Addr().String()}
	}
	u := "dns://t.example?resolver="
	for i, r := range resolvers {
		if i > 0 {
			u += ","
		}
		u += r
	}
	return u
}

// echo copies what the origin's next stream brings back to it.
func echo(ctx context.Context, origin Session) {
	st, err := origin.AcceptStream(ctx)
	if err != nil {
		return
	}
	defer st.Close()
	io.Copy(st, st)
	st.CloseWrite()
}

// roundTrip sends n random bytes on a new stream of edge, and checks that
// they come back intact.
func roundTrip(t *testing.T, ctx context.Context, edge Session, n int) {
	t.Helper()
	st, err := edge.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	want := make([]byte, n)
	rand.Read(want)
	werr := make(chan error, 1)
	go func() {
		_, err := st.Write(want)
		if err == nil {
			err = st.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatalf("read back %d of %d bytes: %v", len(got), n, err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%d bytes came back as %d different ones", n, len(got))
	}
}

// TestDNSListenAndDial runs a session straight to the origin's server, no
// resolver between: the server takes the queries a resolver would pass on.
func TestDNSListenAndDial(t *testing.T) {
	ln := dnsListen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	edge, origin := dialAccept(t, ctx, ln, dnsThrough(t, ln, testRate))
	defer edge.Close()
	defer origin.Close()
	carries(t, ctx, edge, origin)
	go echo(ctx, origin)
	roundTrip(t, ctx, edge, 64<<10)
	if ln.Server().TunnelQueries.Load() == 0 {
		t.Error("no tunnel query counted")
	}
}

// TestDNSWrongSecret: an edge with another secret gets ordinary answers,
// nothing of it reaches kcp, and its dial fails.
func TestDNSWrongSecret(t *testing.T) {
	ln := dnsListen(t)
	u, _ := ParseURL(dnsDialURL(ln))
	end := transportEnd(false)
	end.Secret = "another secret, of the same length as the test's"
	d, err := NewDialer(u, end)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s, err := d.Dial(ctx); err == nil {
		s.Close()
		t.Fatal("a dial with another secret succeeded")
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("dial: %v", err)
	}
	srv := ln.Server()
	if srv.TunnelQueries.Load() != 0 || srv.Ordinary.Load() == 0 {
		t.Errorf("tunnel queries %d, refused %d", srv.TunnelQueries.Load(), srv.Ordinary.Load())
	}
}

func TestSystemResolvers(t *testing.T) {
	got := systemResolvers([]byte("# generated\nnameserver 192.0.2.1\nnameserver  2001:db8::53 \nsearch example\nnameserver bad\noptions edns0\n"))
	want := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:53"), netip.MustParseAddrPort("[2001:db8::53]:53")}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %v, want %v", got, want)
	}
}
