package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"ferry/tunnel"
)

const goodSecret = "0123456789abcdef0123456789abcdef"

// setenv sets vars for the test, and clears every other FERRY_ variable.
func setenv(t *testing.T, vars map[string]string) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "FERRY_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

func TestLoadDefaults(t *testing.T) {
	setenv(t, map[string]string{"FERRY_SECRET": goodSecret, "FERRY_EDGE_ORIGINS": "wss://origin.example/t?connect=192.0.2.1:443&sni=cdn.example"})
	var e Edge
	if err := Load(&e); err != nil {
		t.Fatal(err)
	}
	if len(e.Listen) != 8 || e.Listen[0] != (Listener{Scheme: "tls", Addr: ":443", Route: "chat"}) {
		t.Errorf("listen %v", e.Listen)
	}
	if e.MaxConns != 27500 || time.Duration(e.Grace) != 30*time.Second || e.Admin != "127.0.0.1:8199" {
		t.Errorf("defaults %+v", e.Common)
	}
	want := tunnel.URL{Scheme: "wss", Host: "origin.example:443", Path: "/t", Connect: "192.0.2.1:443", SNI: "cdn.example"}
	if len(e.Origins) != 1 || e.Origins[0] != want {
		t.Errorf("origins %+v, want %+v", e.Origins, want)
	}

	setenv(t, nil)
	var s Standalone
	if err := Load(&s); err != nil {
		t.Fatalf("standalone needs no configuration: %v", err)
	}
	if got := s.Targets["chat"].Alts; len(got) != 2 || got[1] != (Alt{Host: "g-fallback.whatsapp.net", Port: "5222"}) {
		t.Errorf("targets %v", s.Targets)
	}

	setenv(t, map[string]string{"FERRY_SECRET": goodSecret, "FERRY_ADMIN": ""})
	var o Origin
	if err := Load(&o); err != nil {
		t.Fatal(err)
	}
	if o.Admin != "" || o.Listen[0].Host != ":8080" || o.Listen[0].Path != "/tunnel" {
		t.Errorf("origin %+v", o)
	}
}

// TestLoadErrors checks that each bad value is refused with an error that
// names its variable, and never quotes the secret.
func TestLoadErrors(t *testing.T) {
	base := map[string]string{"FERRY_SECRET": goodSecret, "FERRY_EDGE_ORIGINS": "ws://o.example/t"}
	for _, tc := range []struct{ key, value string }{
		{"FERRY_SECRET", "too-short-secret-but-secret"},
		{"FERRY_SECRET", ""},
		{"FERRY_EDGE_ORIGINS", ""},
		{"FERRY_EDGE_ORIGINS", "http://o.example/t"},
		{"FERRY_EDGE_ORIGINS", "ws://o.example/t?insecure=1"},
		{"FERRY_EDGE_ORIGINS", "ws://o.example/t?connect=nowhere"},
		{"FERRY_EDGE_LISTEN", "udp://:443/chat"},
		{"FERRY_EDGE_LISTEN", "tcp://:443"},
		{"FERRY_EDGE_LISTEN", "tcp://:99999/chat"},
		{"FERRY_EDGE_LISTEN", "tcp://:443/chat,tcp://:443/media"},
		{"FERRY_EDGE_LISTEN", "tcp://:443/chat room"},
		{"FERRY_EDGE_LISTEN", "tcp://:443/chat?decoy=no"},
		{"FERRY_EDGE_MEDIA_NAMES", "*whatsapp.net"},
		{"FERRY_EDGE_MEDIA_NAMES", "*.whatsapp.net."},
		{"FERRY_EDGE_MEDIA_AFTER_CHAT", "yes"},
		{"FERRY_EDGE_ACME", "http://ca.example/dir"},
		{"FERRY_EDGE_ACME", "zerossl"},
		{"FERRY_EDGE_PUBLIC_HOST", "a host"},
		{"FERRY_MEMORY_LIMIT", "10MiB"},
		{"FERRY_MEMORY_LIMIT", "lots"},
		{"FERRY_EDGE_MAX_CONNS", "0"},
		{"FERRY_EDGE_MAX_CONNS", "lots"},
		{"FERRY_LOG_LEVEL", "verbose"},
		{"FERRY_LOG_FORMAT", "xml"},
		{"FERRY_GRACE", "soon"},
		{"FERRY_ADMIN", "8199"},
		{"FERRY_EDGE_TLS_CERT", "/etc/cert.pem"},
		{"FERRY_EDGE_ORIGNS", "ws://typo.example/t"},
		{"FERRY_EDGE_TUNNEL_LISTEN", "ws://:9000/t?sni=x"},
		{"FERRY_EDGE_TUNNEL_LISTEN", "ws://:9000/t,ws://:9000/u"},
		{"FERRY_EDGE_DECOY", "ftp://x"},
		{"FERRY_EDGE_PROXY_FROM", "10.0.0.1"},
		{"FERRY_EDGE_PROXY_FROM", "10.0.0.0/33"},
		{"FERRY_EDGE_PROXY_FROM", "10.0.0.1/8"},
		{"FERRY_EDGE_PROXY_FROM", ","},
	} {
		vars := map[string]string{}
		for k, v := range base {
			vars[k] = v
		}
		vars[tc.key] = tc.value
		setenv(t, vars)
		if tc.key == "FERRY_SECRET" && tc.value == "" {
			os.Unsetenv("FERRY_SECRET")
		}
		var e Edge
		err := Load(&e)
		var cerr *Error
		if !errors.As(err, &cerr) {
			t.Errorf("%s=%q: err %v, want a *config.Error", tc.key, tc.value, err)
			continue
		}
		want := tc.key
		if tc.key == "FERRY_EDGE_TLS_CERT" {
			want = "FERRY_EDGE_TLS_KEY" // the missing half is named
		}
		if !strings.HasPrefix(err.Error(), want+":") {
			t.Errorf("%s=%q: %q does not start with the variable", tc.key, tc.value, err)
		}
		if strings.Contains(err.Error(), goodSecret) || (tc.key == "FERRY_SECRET" && tc.value != "" && strings.Contains(err.Error(), tc.value)) {
			t.Errorf("%s=%q: error quotes the secret: %q", tc.key, tc.value, err)
		}
	}

	// Reverse mode: an edge with only tunnel listeners is whole; an origin
	// needs listeners or edges to dial.
	setenv(t, map[string]string{"FERRY_SECRET": goodSecret, "FERRY_EDGE_TUNNEL_LISTEN": "wss://:8443/t,quic://:8443"})
	var re Edge
	if err := Load(&re); err != nil || len(re.TunnelListen) != 2 || len(re.Origins) != 0 {
		t.Errorf("reverse edge: %v, %+v", err, re.TunnelListen)
	}
	setenv(t, map[string]string{"FERRY_SECRET": goodSecret, "FERRY_ORIGIN_LISTEN": "", "FERRY_ORIGIN_EDGES": "wss://edge.example/t"})
	var ro Origin
	if err := Load(&ro); err != nil || len(ro.Listen) != 0 || len(ro.Edges) != 1 || ro.Pool != 2 {
		t.Errorf("reverse origin: %v, %+v", err, ro)
	}
	setenv(t, map[string]string{"FERRY_SECRET": goodSecret, "FERRY_ORIGIN_LISTEN": ""})
	if err := Load(&Origin{}); err == nil || !strings.HasPrefix(err.Error(), "FERRY_ORIGIN_LISTEN:") {
		t.Errorf("origin without listeners or edges: %v", err)
	}

	setenv(t, map[string]string{"FERRY_EDGE_LISTEN": "tcp://:5222/nowhere"})
	var s Standalone
	if err := Load(&s); err == nil || !strings.HasPrefix(err.Error(), "FERRY_EDGE_LISTEN:") {
		t.Errorf("standalone listener of an unknown route: %v", err)
	}
	setenv(t, map[string]string{"FERRY_SECRET": goodSecret, "FERRY_ORIGIN_TARGETS": "chat=g.whatsapp.net"})
	var o Origin
	if err := Load(&o); err == nil || !strings.HasPrefix(err.Error(), "FERRY_ORIGIN_TARGETS:") {
		t.Errorf("target without a port: %v", err)
	}
	setenv(t, map[string]string{"FERRY_SECRET": goodSecret, "FERRY_ORIGIN_DECOY": "/nonexistent/dir"})
	if err := Load(&o); err == nil || !strings.HasPrefix(err.Error(), "FERRY_ORIGIN_DECOY:") {
		t.Errorf("missing decoy directory: %v", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret(goodSecret)
	for _, f := range []string{"%v", "%s", "%+v", "%#v", "%q"} {
		if strings.Contains(fmt.Sprintf(f, s), goodSecret) {
			t.Errorf("%s prints the secret", f)
		}
	}
}

func FuzzParseListener(f *testing.F) {
	for _, s := range []string{"tls://:443/chat", "proxy+tcp://[::1]:8080/chat80", "tcp://127.0.0.1:5222/chat", "tcp://:0/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseListener(s)
		if err != nil {
			return
		}
		// What parses prints back to something that parses the same.
		l2, err := ParseListener(l.String())
		if err != nil || l2 != l {
			t.Fatalf("%q parsed as %+v, which prints as %q and parses as %+v, %v", s, l, l.String(), l2, err)
		}
	})
}

func FuzzParseTargets(f *testing.F) {
	for _, s := range []string{"chat=g.whatsapp.net:5222|g-fallback.whatsapp.net:5222,media=whatsapp.net:443", "a=[::1]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := ParseTargets(s)
		if err != nil {
			return
		}
		for route, r := range ts {
			if checkRoute(route) != nil || len(r.Alts) == 0 {
				t.Fatalf("%q: accepted route %q with %v", s, route, r.Alts)
			}
		}
	})
}

// TestLimitRules checks issue 14's rules one by one: each bad value is
// refused with an error that names its variable and the form it wants,
// and the value next to it on the good side is taken.
func TestLimitRules(t *testing.T) {
	base := map[string]string{"FERRY_SECRET": goodSecret, "FERRY_EDGE_ORIGINS": "ws://o.example/t"}
	for _, tc := range []struct {
		name string
		vars map[string]string
		// wantVar is the variable the error names, empty when Load must
		// succeed; want is in the error besides the variable and form.
		wantVar, want, form string
	}{
		{"secret of 32 bytes", map[string]string{"FERRY_SECRET": strings.Repeat("x", 32)}, "", "", ""},
		{"secret of 31 bytes", map[string]string{"FERRY_SECRET": strings.Repeat("x", 31)}, "FERRY_SECRET", "31 bytes long, shorter than 32", "at least 32 bytes"},
		// 11 runes of 3 bytes: 33 bytes, enough.
		{"secret counted in bytes", map[string]string{"FERRY_SECRET": strings.Repeat("€", 11)}, "", "", ""},
		{"blank secret", map[string]string{"FERRY_SECRET": strings.Repeat(" ", 40)}, "FERRY_SECRET", "is blank", "not blank"},
		{"blank secret of tabs", map[string]string{"FERRY_SECRET": strings.Repeat(" \t", 20)}, "FERRY_SECRET", "is blank", "not blank"},
		{"secret with a newline", map[string]string{"FERRY_SECRET": goodSecret + "\n"}, "FERRY_SECRET", "ends in a line break", "no line break at the end"},
		{"secret with CRLF", map[string]string{"FERRY_SECRET": goodSecret + "\r\n"}, "FERRY_SECRET", "ends in a line break", "no line break at the end"},
		{"secret with inner spaces", map[string]string{"FERRY_SECRET": "correct horse battery staple and more"}, "", "", ""},

		{"admin on loopback", map[string]string{"FERRY_ADMIN": "127.0.0.1:8199"}, "", "", ""},
		{"admin on IPv6 loopback", map[string]string{"FERRY_ADMIN": "[::1]:8199"}, "", "", ""},
		{"admin on localhost", map[string]string{"FERRY_ADMIN": "localhost:8199"}, "", "", ""},
		{"admin on 127.0.0.2", map[string]string{"FERRY_ADMIN": "127.0.0.2:8199"}, "", "", ""},
		{"admin disabled", map[string]string{"FERRY_ADMIN": ""}, "", "", ""},
		{"admin everywhere", map[string]string{"FERRY_ADMIN": ":8199"}, "FERRY_ADMIN", "every address", "FERRY_ADMIN_PUBLIC=true"},
		{"admin on 0.0.0.0", map[string]string{"FERRY_ADMIN": "0.0.0.0:8199"}, "FERRY_ADMIN", "0.0.0.0", "FERRY_ADMIN_PUBLIC=true"},
		{"admin on a private address", map[string]string{"FERRY_ADMIN": "10.0.0.5:8199"}, "FERRY_ADMIN", "no authentication", "FERRY_ADMIN_PUBLIC=true"},
		{"admin on a name", map[string]string{"FERRY_ADMIN": "admin.example:8199"}, "FERRY_ADMIN", "beyond loopback", "FERRY_ADMIN_PUBLIC=true"},
		{"admin public", map[string]string{"FERRY_ADMIN": ":8199", "FERRY_ADMIN_PUBLIC": "true"}, "", "", ""},
		{"admin public false", map[string]string{"FERRY_ADMIN": ":8199", "FERRY_ADMIN_PUBLIC": "false"}, "FERRY_ADMIN", "FERRY_ADMIN_PUBLIC=true", "loopback HOST:PORT"},
		{"admin public yes", map[string]string{"FERRY_ADMIN_PUBLIC": "yes"}, "FERRY_ADMIN_PUBLIC", `"yes" is neither true nor false`, "true or false"},

		{"grace 1h", map[string]string{"FERRY_GRACE": "1h"}, "", "", ""},
		{"grace over 1h", map[string]string{"FERRY_GRACE": "61m"}, "FERRY_GRACE", "1h1m0s is longer than 1h0m0s", "up to 1h"},
		{"handshake 5m", map[string]string{"FERRY_EDGE_HANDSHAKE_TIMEOUT": "5m"}, "", "", ""},
		{"handshake over 5m", map[string]string{"FERRY_EDGE_HANDSHAKE_TIMEOUT": "301s"}, "FERRY_EDGE_HANDSHAKE_TIMEOUT", "5m1s is longer than 5m0s", "up to 5m"},
		{"edge pool 64", map[string]string{"FERRY_EDGE_POOL": "64"}, "", "", ""},
		{"edge pool 65", map[string]string{"FERRY_EDGE_POOL": "65"}, "FERRY_EDGE_POOL", "65 is more than 64", "from 1 to 64"},

		{"origins distinct", map[string]string{"FERRY_EDGE_ORIGINS": "ws://o.example/t,ws://o.example/t?connect=192.0.2.1:80,wss://o.example/t"}, "", "", ""},
		{"origin twice", map[string]string{"FERRY_EDGE_ORIGINS": "ws://o.example/t,wss://p.example/t,ws://o.example:80/t"}, "FERRY_EDGE_ORIGINS", "ws://o.example:80/t is listed twice", "comma-separated"},
		{"public host twice", map[string]string{"FERRY_EDGE_PUBLIC_HOST": "a.example,A.example"}, "FERRY_EDGE_PUBLIC_HOST", "a.example is listed twice", "comma-separated"},
		{"tunnel listener twice", map[string]string{"FERRY_EDGE_TUNNEL_LISTEN": "ws://:9000/t,ws://:9000/t"}, "FERRY_EDGE_TUNNEL_LISTEN", ":9000 is listed twice", "comma-separated"},
	} {
		vars := map[string]string{}
		for k, v := range base {
			vars[k] = v
		}
		for k, v := range tc.vars {
			vars[k] = v
		}
		setenv(t, vars)
		err := Load(&Edge{})
		if tc.wantVar == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		var cerr *Error
		if !errors.As(err, &cerr) || cerr.Var != tc.wantVar {
			t.Errorf("%s: err %v, want a *config.Error naming %s", tc.name, err, tc.wantVar)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, tc.wantVar+": ") || !strings.Contains(msg, tc.want) || !strings.Contains(msg, "(want ") || !strings.Contains(cerr.Form, tc.form) {
			t.Errorf("%s: %q, want %s: ...%s... (want ...%s...)", tc.name, msg, tc.wantVar, tc.want, tc.form)
		}
		if strings.Contains(msg, goodSecret) {
			t.Errorf("%s: %q quotes the secret", tc.name, msg)
		}
	}

	// The origin's own lists and pool.
	for _, tc := range []struct{ key, value, want string }{
		{"FERRY_ORIGIN_EDGES", "wss://e.example/t,wss://e.example:443/t", "wss://e.example:443/t is listed twice"},
		{"FERRY_ORIGIN_LISTEN", "ws://:8080/t,ws://:8080/u", ":8080 is listed twice"},
		{"FERRY_ORIGIN_POOL", "100", "100 is more than 64"},
	} {
		setenv(t, map[string]string{"FERRY_SECRET": goodSecret, tc.key: tc.value})
		if err := Load(&Origin{}); err == nil || !strings.HasPrefix(err.Error(), tc.key+": ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: %v, want %s: ...%s", tc.key, tc.value, err, tc.key, tc.want)
		}
	}
	// Standalone has an admin endpoint too.
	setenv(t, map[string]string{"FERRY_ADMIN": "[::]:8199"})
	if err := Load(&Standalone{}); err == nil || !strings.HasPrefix(err.Error(), "FERRY_ADMIN: ") {
		t.Errorf("standalone with a public admin endpoint: %v", err)
	}
}

func TestProxyFrom(t *testing.T) {
	setenv(t, map[string]string{"FERRY_SECRET": goodSecret, "FERRY_EDGE_ORIGINS": "ws://o.example/t"})
	var e Edge
	if err := Load(&e); err != nil {
		t.Fatal(err)
	}
	// Loopback and private ranges, and nothing else.
	for a, want := range map[string]bool{"127.0.0.1": true, "::1": true, "10.1.2.3": true, "172.31.0.1": true, "192.168.1.1": true, "fd00::1": true, "198.51.100.7": false, "172.32.0.1": false, "2001:db8::1": false} {
		in := false
		for _, p := range e.ProxyFrom {
			in = in || p.Contains(netip.MustParseAddr(a))
		}
		if in != want {
			t.Errorf("default FERRY_EDGE_PROXY_FROM holds %s: %v, want %v", a, in, want)
		}
	}
	for v, want := range map[string]string{"203.0.113.0/24, 2001:db8::/32": "203.0.113.0/24,2001:db8::/32", "none": ""} {
		setenv(t, map[string]string{"FERRY_SECRET": goodSecret, "FERRY_EDGE_ORIGINS": "ws://o.example/t", "FERRY_EDGE_PROXY_FROM": v})
		var e Edge
		if err := Load(&e); err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if got := e.ProxyFrom.String(); got != want || e.ProxyFrom == nil {
			t.Errorf("%q: %q (nil %v), want %q", v, got, e.ProxyFrom == nil, want)
		}
	}
}

// TestNoPerAddressCapByDefault: behind carrier-grade NAT thousands of
// phones share one address, so FERRY_EDGE_MAX_CONNS_PER_IP is off unless
// set, in the loaded configuration and in what `ferry help` prints.
func TestNoPerAddressCapByDefault(t *testing.T) {
	setenv(t, map[string]string{"FERRY_SECRET": goodSecret, "FERRY_EDGE_ORIGINS": "wss://origin.example/t"})
	var e Edge
	if err := Load(&e); err != nil {
		t.Fatal(err)
	}
	if e.MaxConnsPerIP != 0 {
		t.Errorf("FERRY_EDGE_MAX_CONNS_PER_IP defaults to %d, want 0", e.MaxConnsPerIP)
	}
	for _, spec := range []any{&Edge{}, &Standalone{}} {
		for _, v := range Vars(spec) {
			if v.Key == "FERRY_EDGE_MAX_CONNS_PER_IP" && v.Default != "0" {
				t.Errorf("%T: help gives FERRY_EDGE_MAX_CONNS_PER_IP the default %q, want 0", spec, v.Default)
			}
		}
	}
	setenv(t, map[string]string{"FERRY_SECRET": goodSecret, "FERRY_EDGE_ORIGINS": "wss://origin.example/t", "FERRY_EDGE_MAX_CONNS_PER_IP": "50"})
	if err := Load(&e); err != nil || e.MaxConnsPerIP != 50 {
		t.Errorf("FERRY_EDGE_MAX_CONNS_PER_IP=50: %d, %v", e.MaxConnsPerIP, err)
	}
}
