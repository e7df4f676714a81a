package edge

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"ferry/internal/fake"
)

// TestNoClientIPsInLogs checks that, even at debug level, no log line holds
// a client's address unless LogClientIPs asks for them.
func TestNoClientIPsInLogs(t *testing.T) {
	const client = "203.0.113.7"
	for _, logIPs := range []bool{false, true} {
		var logs fake.SyncBuffer
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &Server{
			Listeners: []Listener{{Listener: ln, Route: "chat", ProxyProtocol: true}},
			Connect: func(context.Context, Request) (net.Conn, error) {
				return nil, errors.New("origin unreachable")
			},
			HandshakeTimeout: time.Second,
			LogClientIPs:     logIPs,
			Log:              slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		}
		stop := runServer(srv)
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "PROXY TCP4 "+client+" 127.0.0.1 5555 443\r\n"+string(openingWeb))
		io.ReadAll(c) // closed once the route fails, which is logged
		c.Close()
		stop()
		if got := strings.Contains(logs.String(), client); got != logIPs {
			t.Errorf("LogClientIPs %v: address in logs %v:\n%s", logIPs, got, logs.String())
		}
		if !strings.Contains(logs.String(), "client not connected") {
			t.Errorf("the failure was not logged:\n%s", logs.String())
		}
	}
}

// TestNoClientIPsInRelayErrors checks that a relay that ends in a network
// error, whose text names both ends, logs no client address unless asked.
func TestNoClientIPsInRelayErrors(t *testing.T) {
	echo := fake.Start(t, fake.Echo)
	for _, logIPs := range []bool{false, true} {
		var logs fake.SyncBuffer
		ln := listenLoopback(t)
		srv := &Server{
			Listeners: []Listener{{Listener: ln, Route: "chat"}},
			Connect: Direct(func(ctx context.Context, _, _ string, _ netip.AddrPort) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", echo.Addr())
			}),
			LogClientIPs: logIPs,
			Log:          slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		}
		stop := runServer(srv)
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		client := c.LocalAddr().String()
		c.Write(openingWeb)
		io.ReadFull(c, make([]byte, len(openingWeb)))
		// A reset, whose error on the edge's read names the client.
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		stop()
		if !strings.Contains(logs.String(), "client relay ended") {
			t.Fatalf("the relay's end was not logged:\n%s", logs.String())
		}
		if got := strings.Contains(logs.String(), client); got != logIPs {
			t.Errorf("LogClientIPs %v: %s in logs %v:\n%s", logIPs, client, got, logs.String())
		}
	}
}

// runServer runs srv until the returned stop, which waits for its drain.
func runServer(srv *Server) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		srv.Grace = time.Second
		srv.Run(ctx)
		close(done)
	}()
	return func() {
		cancel()
		<-done
	}
}
