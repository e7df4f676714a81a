package tunnel

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// TestQUICListenerCapsStrangers: a QUIC listener holds at most MaxIdlePerIP
// connections that are not sessions from one address and MaxConns in all,
// closing the oldest for a new one, and a session, once proven, is not
// counted.
func TestQUICListenerCapsStrangers(t *testing.T) {
	const maxConns, perIP = 3, 2
	ln := listenOn(t, URL{Scheme: "quic", Host: "127.0.0.1:0"}, ListenOptions{End: transportEnd(true), MaxConns: maxConns, MaxIdlePerIP: perIP})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, _ := net.ResolveUDPAddr("udp", ln.Addr().String())
	from := func(ip string) *quic.Conn {
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
		if err != nil {
			t.Fatal(err)
		}
		tr := &quic.Transport{Conn: pc}
		t.Cleanup(func() {
			tr.Close()
			pc.Close()
		})
		c, err := tr.Dial(ctx, addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{http3.NextProtoH3}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseWithError(0, "") })
		// The server's SETTINGS: it has accepted the connection.
		if _, err := c.AcceptUniStream(ctx); err != nil {
			t.Fatal(err)
		}
		return c
	}
	closed := func(c *quic.Conn, why string) {
		t.Helper()
		select {
		case <-c.Context().Done():
		case <-ctx.Done():
			t.Fatalf("%s is still open", why)
		}
	}
	open := func(c *quic.Conn, why string) {
		t.Helper()
		if c.Context().Err() != nil {
			t.Errorf("%s was closed: %v", why, context.Cause(c.Context()))
		}
	}

	edge, origin := connect(t, ctx, ln, "quic://"+ln.Addr().String())
	defer origin.Close()
	defer edge.Close()
	a1, a2 := from("127.0.0.2"), from("127.0.0.2")
	a3 := from("127.0.0.2")
	closed(a1, "the address's oldest stranger")
	b1 := from("127.0.0.3")
	open(a2, "a stranger within the caps")
	b2 := from("127.0.0.3")
	closed(a2, "the listener's oldest stranger")
	for _, c := range []*quic.Conn{a3, b1, b2} {
		open(c, "a newer stranger")
	}
	select {
	case <-edge.Done():
		t.Error("the session was closed for strangers")
	default:
	}
}
