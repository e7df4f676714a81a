package edge

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// trustEdge runs a server with one proxy+tcp listener on 127.0.0.1 whose
// Connect reports each request's client and fails.
func trustEdge(t *testing.T, mutate func(*Server)) (addr string, clients chan netip.AddrPort) {
	t.Helper()
	clients = make(chan netip.AddrPort, 16)
	ln := listenLoopback(t)
	srv := &Server{
		Listeners: []Listener{{Listener: ln, Route: "chat", ProxyProtocol: true}},
		Connect: func(_ context.Context, r Request) (net.Conn, error) {
			clients <- r.Client
			return nil, errors.New("origin unreachable")
		},
		HandshakeTimeout: time.Minute,
		Log:              slog.New(slog.DiscardHandler),
	}
	if mutate != nil {
		mutate(srv)
	}
	t.Cleanup(runServer(srv))
	return ln.Addr().String(), clients
}

func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

const claim = "PROXY TCP4 203.0.113.7 127.0.0.1 5555 8222\r\n"

// TestTrustedHeader: a header from a sender in ProxyFrom (loopback, by
// default) gives the client's address.
func TestTrustedHeader(t *testing.T) {
	addr, clients := trustEdge(t, nil)
	c := dialFrom(t, "127.0.0.1", addr)
	io.WriteString(c, claim+string(openingWeb))
	io.ReadAll(c)
	if got := <-clients; got != netip.MustParseAddrPort("203.0.113.7:5555") {
		t.Errorf("client %v, want the header's 203.0.113.7:5555", got)
	}
}

// TestUntrustedHeader: a sender outside ProxyFrom is a client of a plain
// listener: its PROXY header is bytes that are not WhatsApp's, answered by
// the web site; without one, it is relayed as itself.
func TestUntrustedHeader(t *testing.T) {
	addr, clients := trustEdge(t, func(s *Server) { s.ProxyFrom = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} })
	c := dialFrom(t, "127.0.0.1", addr)
	io.WriteString(c, claim+string(openingWeb))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no HTTP answer to an untrusted PROXY header: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("untrusted PROXY header: HTTP %d, want 400 from the web site", resp.StatusCode)
	}
	select {
	case got := <-clients:
		t.Fatalf("untrusted PROXY header relayed, as %v", got)
	default:
	}

	c = dialFrom(t, "127.0.0.1", addr)
	c.Write(openingWeb)
	io.ReadAll(c)
	if got := <-clients; got.Addr() != netip.MustParseAddr("127.0.0.1") || got.String() != c.LocalAddr().String() {
		t.Errorf("untrusted sender relayed as %v, want itself %v", got, c.LocalAddr())
	}
}

// TestAdmissionBeforeHeader: an untrusted sender's silent connections count
// against its address's cap before a byte is read, so they cannot fill
// MaxConns for others; a trusted sender (a load balancer) is counted by its
// headers' addresses instead.
func TestAdmissionBeforeHeader(t *testing.T) {
	addr, clients := trustEdge(t, func(s *Server) {
		s.ProxyFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}
		s.MaxConns, s.MaxConnsPerIP = 3, 2
	})
	silent := []net.Conn{dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.1", addr)}
	// The third is refused at once, unread: one listener admits in order,
	// so the two before it are counted by now.
	over := dialFrom(t, "127.0.0.1", addr)
	over.SetReadDeadline(time.Now().Add(10 * time.Second)) // fail, not hang
	if n, err := over.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("third silent connection from one address: read %d, %v; want it closed", n, err)
	}
	other := dialFrom(t, "127.0.0.2", addr)
	other.Write(openingWeb)
	io.ReadAll(other)
	if got := <-clients; got.Addr() != netip.MustParseAddr("127.0.0.2") {
		t.Errorf("client %v, want 127.0.0.2", got)
	}

	for _, c := range silent {
		c.Close()
	}

	// A trusted sender's clients under two addresses pass a cap of 1 by
	// address: the sender itself is not counted.
	addr, clients = trustEdge(t, func(s *Server) { s.MaxConnsPerIP = 1 })
	for _, claimed := range []string{"203.0.113.7", "203.0.113.8"} {
		c := dialFrom(t, "127.0.0.3", addr)
		io.WriteString(c, "PROXY TCP4 "+claimed+" 127.0.0.1 5555 8222\r\n"+string(openingWeb))
		io.ReadAll(c)
		if got := <-clients; got.Addr().String() != claimed {
			t.Errorf("trusted sender's client %v, want %s", got, claimed)
		}
	}
}
