package origin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"ferry/config"
	"ferry/tunnel"
	"ferry/upstream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "test-secret-0123456789-0123456789-abcdef"

// echo is a target that sends back what it reads.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				io.Copy(c, c)
				c.Close()
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestServerName checks the origin's answers to streams that carry a server
// name: one that the route's pattern allows is dialled; one outside it, or
// any on a route without a pattern, gets ReplyNotAllowed and nothing is
// dialled; a malformed one gets ReplyBadHeader. A version 1 header (an
// older edge's) still gets its target.
func TestServerName(t *testing.T) {
	target := echo(t)
	var mu sync.Mutex
	var dialled []string
	up := &upstream.Dialer{
		Timeout:    time.Second,
		ProbeEvery: -1, // the test counts the dials
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			dialled = append(dialled, addr)
			mu.Unlock()
			// Every name resolves to the echo target.
			return (&net.Dialer{}).DialContext(ctx, network, target)
		},
	}
	var err error
	up.Targets, err = config.ParseTargets("chat=g.whatsapp.test:5222,media=*.whatsapp.test:443|whatsapp.test:443")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	lu := tunnel.URL{Scheme: "ws", Host: "127.0.0.1:0", Path: "/tunnel"}
	ln, err := tunnel.Listen(lu, tunnel.ListenOptions{End: tunnel.End{Origin: true, Secret: secret, Log: log}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Listeners: []tunnel.Listener{ln}, Upstream: up, Log: log}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Grace = time.Second
		srv.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()

	lu.Host = ln.Addr().String()
	d, err := tunnel.NewDialer(lu, tunnel.End{Secret: secret, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := d.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()

	for _, tc := range []struct {
		h      tunnel.Header
		reply  error // nil for ReplyOK
		dialed []string
	}{
		{tunnel.Header{Route: "media", ServerName: "mmg.whatsapp.test"}, nil, []string{"mmg.whatsapp.test:443"}},
		{tunnel.Header{Route: "media"}, nil, []string{"whatsapp.test:443"}},
		{tunnel.Header{Route: "chat"}, nil, []string{"g.whatsapp.test:5222"}},
		{tunnel.Header{Route: "media", ServerName: "evil.example"}, tunnel.ReplyNotAllowed, nil},
		{tunnel.Header{Route: "media", ServerName: "whatsapp.test.evil.example"}, tunnel.ReplyNotAllowed, nil},
		{tunnel.Header{Route: "chat", ServerName: "mmg.whatsapp.test"}, nil, []string{"g.whatsapp.test:5222"}},
		{tunnel.Header{Route: "nope", ServerName: "mmg.whatsapp.test"}, tunnel.ReplyUnknownRoute, nil},
	} {
		st, err := tunnel.Open(ctx, sess, tc.h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Write([]byte("hello")); err != nil {
			t.Fatalf("%+v: %v", tc.h, err)
		}
		st.SetReadDeadline(time.Now().Add(10 * time.Second))
		var buf [5]byte
		_, err = io.ReadFull(st, buf[:])
		st.Close()
		switch {
		case tc.reply == nil && (err != nil || string(buf[:]) != "hello"):
			t.Errorf("%+v: got %q, %v, want the target's echo", tc.h, buf, err)
		case tc.reply != nil && !errors.Is(err, tc.reply):
			t.Errorf("%+v: %v, want %v", tc.h, err, tc.reply)
		}
		mu.Lock()
		got := dialled
		dialled = nil
		mu.Unlock()
		if !slices.Equal(got, tc.dialed) {
			t.Errorf("%+v: the origin dialled %v, want %v", tc.h, got, tc.dialed)
		}
	}

	// Forged headers, written as bytes: a version 1 header as an older edge
	// writes it, and a version 2 header whose name is no DNS name.
	for _, tc := range []struct {
		b     []byte
		reply tunnel.Reply
	}{
		{[]byte{1, 0, 4, 'c', 'h', 'a', 't'}, tunnel.ReplyOK},
		{[]byte{2, 0, 5, 'm', 'e', 'd', 'i', 'a', 18, 'x', '.', 'w', 'h', 'a', 't', 's', 'a', 'p', 'p', '.', 't', 'e', 's', 't', ':', '8', '0'}, tunnel.ReplyBadHeader},
		{[]byte{2, 0, 5, 'm', 'e', 'd', 'i', 'a', 4, 'a', '_', '.', 'b'}, tunnel.ReplyBadHeader},
	} {
		st, err := sess.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := st.Write(tc.b); err != nil {
			t.Fatal(err)
		}
		var r [1]byte
		_, err = io.ReadFull(st, r[:])
		st.Close()
		if err != nil || tunnel.Reply(r[0]) != tc.reply {
			t.Errorf("%x: reply %d, %v, want %d", tc.b, r[0], err, tc.reply)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(dialled, []string{"g.whatsapp.test:5222"}) {
		t.Errorf("forged headers: the origin dialled %v, want only chat's target", dialled)
	}
}
