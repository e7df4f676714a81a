package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"ferry/edge"
	"ferry/pool"
	"ferry/tunnel"
)

// TestClientStatus checks an edge's status: listeners by port and what
// they carry, closed once the process drains; peers by host with their
// transport and notes, never a URL's path; the origins dialling in.
func TestClientStatus(t *testing.T) {
	var lns []edge.Listener
	for _, l := range []edge.Listener{{Route: "chat", TLS: true}, {Route: "media"}, {Route: "chat", ProxyProtocol: true, DecoyOff: true}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		l.Listener = ln
		lns = append(lns, l)
	}
	var origins, reverse []tunnel.URL
	for _, s := range []string{"ws://o.example/secret-a", "quic://q.example:8443?connect=203.0.113.9:8443"} {
		u, err := tunnel.ParseURL(s)
		if err != nil {
			t.Fatal(err)
		}
		origins = append(origins, u)
	}
	u, err := tunnel.ParseListenURL("wss://:9443/secret-b")
	if err != nil {
		t.Fatal(err)
	}
	reverse = append(reverse, u)
	tunnels := &edge.Tunnels{Pool: pool.Pool{Peers: []pool.Peer{{Name: origins[0].String()}, {Name: origins[1].String()}}}}
	ctx, cancel := context.WithCancel(t.Context())
	c := newClientStatus(ctx, lns, 27500, 0, tunnels, origins, reverse)
	st := c.status()
	got := fmt.Sprintf("%+v", st)
	for _, want := range []string{
		fmt.Sprintf("{Port:%d Carries:chat, TLS Closed:false}", port(lns[0].Addr())),
		fmt.Sprintf("{Port:%d Carries:media Closed:false}", port(lns[1].Addr())),
		"Carries:chat, PROXY header, no web site",
		"{Name:o.example:80 Transport:WebSocket RTT:0s Sessions:0 Note:redialling}",
		"{Name:q.example:8443 Transport:QUIC RTT:0s Sessions:0 Note:dialled at 203.0.113.9:8443, redialling}",
		"{Name:origins dialling in Transport:WebSocket over TLS",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("status lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "secret") || st.Phones != 0 || st.Refusals != nil {
		t.Errorf("status: %s", got)
	}
	cancel()
	for _, l := range c.status().Listeners {
		if !l.Closed {
			t.Errorf("listener %d not closed in the drain", l.Port)
		}
	}
}
