package e2e

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"ferry/check"
	"ferry/edge"
	"ferry/internal/fake"
)

// TestCheck runs `ferry check`'s checker against an edge and origin: chat
// over TLS and plain reaches a fake WhatsApp server; a route whose target is
// down is reported as "nothing behind it", not as the edge's fault; every
// port shows a stranger the web site.
func TestCheck(t *testing.T) {
	wa := fake.Start(t, fake.WhatsApp)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	o := startOrigin(t, "ws", "127.0.0.1:0", map[string][]string{"chat": {wa.Addr()}, "down": {deadAddr}})
	// Routed by first bytes, as an edge's listeners are by default.
	e := startEdgeWith(t, o.url, &edge.Server{},
		lspec{name: "tls", route: "chat", tls: true, routed: true}, lspec{name: "plain", route: "chat", routed: true},
		lspec{name: "down", route: "down", tls: true, routed: true})
	p := func(name string) int {
		_, s, _ := net.SplitHostPort(e.addrs[name])
		n, _ := strconv.Atoi(s)
		return n
	}
	rs := check.Run(context.Background(), "127.0.0.1", []check.Port{{Port: p("tls"), TLS: true}, {Port: p("plain")}, {Port: p("down"), TLS: true}}, 2*time.Second)
	if !rs[0].OK || !rs[1].OK {
		t.Errorf("chat through the edge: %+v", rs[:2])
	}
	if rs[2].OK || !strings.Contains(rs[2].Verdict, "TLS works but") || !strings.Contains(rs[2].Verdict, "origin cannot reach WhatsApp") {
		t.Errorf("a route whose target is down: %q", rs[2].Verdict)
	}
	// And to a stranger, every port is a web site.
	for _, r := range rs {
		if r.Web.Status != "200" || r.Web.GivesAway {
			t.Errorf("port %d shows a stranger %+v, want the web site", r.Port.Port, r.Web)
		}
	}
}
