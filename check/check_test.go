package check_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferryproxy/ferry/cert"
	"github.com/ferryproxy/ferry/check"
	"github.com/ferryproxy/ferry/internal/fake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(addr)
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// deadPort returns a loopback port with nothing listening.
func deadPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := port(t, ln.Addr().String())
	ln.Close()
	return p
}

// TestRun checks each verdict against fake servers: WhatsApp answering in
// plain and behind TLS, a media server, a dead port, a silent one, and one
// that answers but not as WhatsApp.
func TestRun(t *testing.T) {
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{crt}}
	overTLS := func(h func(net.Conn)) func(net.Conn) {
		return func(c net.Conn) {
			tc := tls.Server(c, conf)
			if tc.Handshake() == nil {
				h(tc)
			}
		}
	}
	chat := fake.Start(t, fake.WhatsApp)
	chatTLS := fake.Start(t, overTLS(fake.WhatsApp))
	media := fake.Start(t, overTLS(fake.Discard))
	silent := fake.Start(t, fake.Discard)
	echo := fake.Start(t, fake.Echo)
	for _, tc := range []struct {
		name string
		p    check.Port
		ok   bool
		says string
	}{
		{"chat", check.Port{Port: port(t, chat.Addr())}, true, "WhatsApp answers"},
		{"chat over TLS", check.Port{Port: port(t, chatTLS.Addr()), TLS: true}, true, "WhatsApp answers"},
		{"media", check.Port{Port: port(t, media.Addr()), Media: true}, true, "media server answers"},
		{"dead", check.Port{Port: deadPort(t)}, false, "refused: a firewall, or nothing listening"},
		{"silent", check.Port{Port: port(t, silent.Addr())}, false, "TCP connects but nothing answers behind it"},
		{"silent TLS", check.Port{Port: port(t, chatTLS.Addr())}, false, "closed the connection unanswered"},
		{"plain on TLS", check.Port{Port: port(t, chat.Addr()), TLS: true}, false, "TLS fails"},
		{"not WhatsApp", check.Port{Port: port(t, echo.Addr())}, false, "not like WhatsApp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := check.Run(context.Background(), "127.0.0.1", []check.Port{tc.p}, 500*time.Millisecond)
			r := rs[0]
			if r.OK != tc.ok || !strings.Contains(r.Verdict, tc.says) {
				t.Errorf("ok %v, %q; want %v, %q", r.OK, r.Verdict, tc.ok, tc.says)
			}
			if r.OK && (r.Connect <= 0 || (tc.p.TLS || tc.p.Media) && r.Handshake <= 0 || !tc.p.Media && r.Answer <= 0) {
				t.Errorf("timings missing: %+v", r)
			}
		})
	}

	rs := check.Run(context.Background(), "127.0.0.1", []check.Port{{Port: deadPort(t)}, {Port: port(t, chat.Addr())}}, time.Second)
	var out bytes.Buffer
	check.Write(&out, "127.0.0.1", rs)
	if !check.Works(rs) || !strings.Contains(out.String(), "Chat works through 127.0.0.1") || !strings.Contains(out.String(), "refused") {
		t.Errorf("table:\n%s", out.String())
	}
	if check.Works(rs[:1]) {
		t.Error("a dead port alone works")
	}
}

func TestParsePorts(t *testing.T) {
	ps, err := check.ParsePorts("443/tls, 80,5222", false)
	if err != nil || len(ps) != 3 || !ps[0].TLS || ps[1].Port != 80 || ps[2].TLS {
		t.Fatalf("%+v, %v", ps, err)
	}
	for _, bad := range []string{"x", "0", "70000", "443/ssl"} {
		if _, err := check.ParsePorts(bad, false); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := check.ParsePorts("587/tls", true); err == nil {
		t.Error("media port with /tls accepted")
	}
}

// FuzzAwaitServerHello feeds arbitrary answers: only a frame whose payload
// starts with the serverHello tag passes.
func FuzzAwaitServerHello(f *testing.F) {
	f.Add(check.ServerHello())
	f.Add([]byte("HTTP/1.1 400 Bad Request\r\n"))
	f.Add([]byte{0, 0, 0, 0x1a})
	f.Fuzz(func(t *testing.T, b []byte) {
		err := check.AwaitServerHello(bytes.NewReader(b))
		want := len(b) >= 4 && b[3] == 0x1a && (b[0]|b[1]|b[2]) != 0
		if (err == nil) != want {
			t.Fatalf("%x: %v", b, err)
		}
		if err != nil && len(b) >= 4 && !errors.Is(err, check.ErrNotWhatsApp) {
			t.Fatalf("%x: %v", b, err)
		}
	})
}
