package tunnel

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

const transportSecret = "transport-test-secret-0123456789abcdef"

func transportEnd(origin bool) End {
	return End{Origin: origin, Secret: transportSecret, Log: slog.New(slog.DiscardHandler)}
}

// listenOn opens a listener of u with o, and closes it when the test ends.
// u is built rather than parsed: a listener URL may not ask for port 0.
func listenOn(t *testing.T, u URL, o ListenOptions) Listener {
	t.Helper()
	ln, err := Listen(u, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestListenAndDial runs a session over each scheme, built from URLs alone
// and options' defaults (a self-signed certificate, the built-in decoy),
// with the dial URL's host never resolved: connect= is dialled instead.
func TestListenAndDial(t *testing.T) {
	for _, lu := range []URL{
		{Scheme: "ws", Host: "127.0.0.1:0", Path: "/t"},
		{Scheme: "wss", Host: "127.0.0.1:0", Path: "/t"},
		{Scheme: "quic", Host: "127.0.0.1:0"},
	} {
		t.Run(lu.Scheme, func(t *testing.T) {
			ln := listenOn(t, lu, ListenOptions{End: transportEnd(true)})
			_, port, _ := net.SplitHostPort(ln.Addr().String())
			raw := lu.Scheme + "://origin.invalid:" + port + lu.Path + "?connect=" + ln.Addr().String() + "&sni=origin.example"
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			edge, origin := connect(t, ctx, ln, raw)
			defer edge.Close()
			defer origin.Close()
			carries(t, ctx, edge, origin)
		})
	}
}

// TestListenDecoy checks that a ws listener shows its decoy to a visitor,
// and the built-in page when it is given none.
func TestListenDecoy(t *testing.T) {
	mine := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "my site") })
	for _, tc := range []struct {
		decoy http.Handler
		want  string
	}{{mine, "my site"}, {nil, "<html"}} {
		ln := listenOn(t, URL{Scheme: "ws", Host: "127.0.0.1:0", Path: "/t"}, ListenOptions{End: transportEnd(true), Decoy: tc.decoy})
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(strings.ToLower(string(body)), tc.want) {
			t.Errorf("visitor got %d %q, want 200 with %q", resp.StatusCode, body, tc.want)
		}
	}
}

// TestListenErrors checks that a socket Listen cannot open is an error that
// names the URL and wraps the system's, for TCP and UDP alike, and that a
// URL of another scheme is refused by both Listen and NewDialer.
func TestListenErrors(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for _, raw := range []string{"ws://" + tcp.Addr().String() + "/t", "wss://" + tcp.Addr().String(), "quic://" + udp.LocalAddr().String()} {
		u, err := ParseListenURL(raw)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := Listen(u, ListenOptions{End: transportEnd(true)})
		if err == nil {
			ln.Close()
			t.Fatalf("%s: listened on a port in use", raw)
		}
		if !errors.Is(err, syscall.EADDRINUSE) || !strings.HasPrefix(err.Error(), u.String()+": ") {
			t.Errorf("%s: %v, want EADDRINUSE after the URL", raw, err)
		}
	}
	bad := URL{Scheme: "tcp", Host: "127.0.0.1:1"}
	if ln, err := Listen(bad, ListenOptions{End: transportEnd(true)}); err == nil {
		ln.Close()
		t.Error("Listen took a tcp URL")
	}
	if _, err := NewDialer(bad, transportEnd(false)); err == nil {
		t.Error("NewDialer took a tcp URL")
	}
}

// TestQUICListenerCloseWaitsForNone checks that a QUIC listener's Close
// returns with a session it accepted still live, that the session carries
// on over the socket they share, and that the socket is closed, its port
// free, as soon as that last session's Close returns.
func TestQUICListenerCloseWaitsForNone(t *testing.T) {
	ln, err := Listen(URL{Scheme: "quic", Host: "127.0.0.1:0"}, ListenOptions{End: transportEnd(true)})
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	edge, origin := connect(t, ctx, ln, "quic://"+addr)
	defer edge.Close()

	if err := ln.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := edge.Probe(ctx); err != nil {
		t.Fatalf("the session no longer answers after its listener's Close: %v", err)
	}
	if pc, err := net.ListenPacket("udp", addr); err == nil {
		pc.Close()
		t.Fatal("the socket was closed under a live session")
	}
	origin.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("the port is still taken after the last session's Close: %v", err)
	}
	pc.Close()
}

// connect dials a session to ln over rawURL and returns both ends, once ln
// has accepted it. The caller closes them.
func connect(t *testing.T, ctx context.Context, ln Listener, rawURL string) (edge, origin Session) {
	t.Helper()
	u, err := ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDialer(u, transportEnd(false))
	if err != nil {
		t.Fatal(err)
	}
	return dialAccept(t, ctx, ln, d)
}

// dialAccept dials d while ln accepts, and returns the two ends of the
// session, for the caller to close.
func dialAccept(t *testing.T, ctx context.Context, ln Listener, d Dialer) (dialed, accepted Session) {
	t.Helper()
	got := make(chan Session, 1)
	go func() {
		s, _ := ln.Accept(ctx)
		got <- s
	}()
	dialed, err := d.Dial(ctx)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	accepted = <-got
	if accepted == nil {
		dialed.Close()
		t.Fatal("no session accepted")
	}
	return dialed, accepted
}

// carries checks that a stream opened on edge carries bytes and a FIN to
// origin.
func carries(t *testing.T, ctx context.Context, edge, origin Session) {
	t.Helper()
	st, err := edge.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	st.CloseWrite()
	in, err := origin.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if got, err := io.ReadAll(in); err != nil || string(got) != "hi" {
		t.Fatalf("the origin read %q, %v", got, err)
	}
}
