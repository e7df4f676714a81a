package tunnel

import "testing"

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want URL
	}{
		{"ws://h", URL{Scheme: "ws", Host: "h:80", Path: "/"}},
		{"wss://origin.example/t?connect=192.0.2.1:443&sni=cdn.example", URL{Scheme: "wss", Host: "origin.example:443", Path: "/t", Connect: "192.0.2.1:443", SNI: "cdn.example"}},
		{"wss://[2001:db8::1]/x/y", URL{Scheme: "wss", Host: "[2001:db8::1]:443", Path: "/x/y"}},
		{"ws://127.0.0.1:8080/tunnel", URL{Scheme: "ws", Host: "127.0.0.1:8080", Path: "/tunnel"}},
		{"quic://[::1]:443", URL{Scheme: "quic", Host: "[::1]:443"}},
		{"quic://h:443/?sni=n", URL{Scheme: "quic", Host: "h:443", SNI: "n"}},
		{"dns://T.Example.COM.", URL{Scheme: "dns", Host: "t.example.com"}},
		{"dns://t.example.com/?resolver=192.0.2.1:53,[2001:db8::1]:5353", URL{Scheme: "dns", Host: "t.example.com", Resolvers: "192.0.2.1:53,[2001:db8::1]:5353"}},
		{"dns://t.example.com?rate=20&resolver=192.0.2.1:53", URL{Scheme: "dns", Host: "t.example.com", Resolvers: "192.0.2.1:53", Rate: 20}},
	} {
		got, err := ParseURL(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseListenURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want URL
	}{
		{"ws://:8080/tunnel", URL{Scheme: "ws", Host: ":8080", Path: "/tunnel"}},
		{"wss://127.0.0.1:8443", URL{Scheme: "wss", Host: "127.0.0.1:8443", Path: "/"}},
		{"quic://[::]:443", URL{Scheme: "quic", Host: "[::]:443"}},
		{"quic://:443/", URL{Scheme: "quic", Host: ":443"}},
		{"dns://:53/T.example.com", URL{Scheme: "dns", Host: ":53", Path: "/t.example.com"}},
		{"dns://192.0.2.53:53/t.example.com.", URL{Scheme: "dns", Host: "192.0.2.53:53", Path: "/t.example.com"}},
	} {
		got, err := ParseListenURL(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseListenURL(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// TestParseErrors pins the error texts: config quotes them after the
// variable's name, and operators read them.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		listen  bool
		in, err string
	}{
		{false, "http://o.example/t", `"http://o.example/t": scheme "http" is not ws, wss, quic or dns`},
		{false, "ws://o.example/t?insecure=1", `"ws://o.example/t?insecure=xxxxx": unknown option "insecure" (known: connect, sni)`},
		{false, "ws://o.example/t?connect=nowhere", `"ws://o.example/t?connect=nowhere": connect: "nowhere" is not HOST:PORT`},
		{false, "ws://o.example/t?connect=:443", `"ws://o.example/t?connect=:443": connect: ":443" has no host`},
		{false, "ws://h/t?sni=a&sni=b", `"ws://h/t?sni=a&sni=b": option sni is given 2 times`},
		{false, "ws://h/t?sni=a:b", `"ws://h/t?sni=a:b": sni "a:b" is not a server name`},
		{false, "ws://h/t?sni=", `"ws://h/t?sni=": sni "" is not a server name`},
		{false, "quic://h", `"quic://h" has no port`},
		{false, "quic://h:1/x", `"quic://h:1/x": a quic URL has no path`},
		{false, "ws:///t", `"ws:///t" has no host`},
		{false, "ws://:80/t", `"ws://:80/t" has no host`},
		{false, "ws://h:99999/t", `"ws://h:99999/t": "h:99999": port must be 1 to 65535`},
		{false, "ws://u:p@h/t", `"ws://u:xxxxx@h/t" is not a tunnel URL`}, // its password not echoed
		{false, "ws://h/t#f", `"ws://h/t#xxxxx" is not a tunnel URL`},
		{false, "ws:h", `"ws:h" is not a tunnel URL`},
		{false, "ws://h/a%2Fb", `"ws://h/a%2Fb": the path must not be escaped`},
		{true, "ws://:9000/t?sni=x", `"ws://:9000/t?sni=x": a listener takes no options`},
		{true, "ws://h/t", `"ws://h/t": "h" is not HOST:PORT`},
		{true, "quic://:0", `"quic://:0": ":0": port must be 1 to 65535`},
		{true, "tcp://:80", `"tcp://:80": scheme "tcp" is not ws, wss, quic or dns`},
		{true, "quic:/x", `"quic:/x": a quic URL has no path`},
		{false, "dns://t.example:53", `"dns://t.example:53": want dns://ZONE?resolver=IP:PORT[,IP:PORT...][&rate=QUERIES_PER_SECOND] (a zone, no port or path)`},
		{false, "dns://t.example/x", `"dns://t.example/x": want dns://ZONE?resolver=IP:PORT[,IP:PORT...][&rate=QUERIES_PER_SECOND] (a zone, no port or path)`},
		{false, "dns://t_x.example", `"dns://t_x.example": want dns://ZONE?resolver=IP:PORT[,IP:PORT...][&rate=QUERIES_PER_SECOND]: zone "t_x.example": label "t_x" is not a host name's`},
		{false, "dns://t.example?resolver=192.0.2.1", `"dns://t.example?resolver=192.0.2.1": resolver "192.0.2.1" is not IP:PORT`},
		{false, "dns://t.example?resolver=a:53&resolver=b:53", `"dns://t.example?resolver=a:53&resolver=b:53": option resolver is given 2 times (list resolvers with commas)`},
		{false, "dns://t.example?rate=0", `"dns://t.example?rate=xxxxx": rate "0" is not a number of queries a second, 1 to 10000`},
		{false, "dns://t.example?sni=x", `"dns://t.example?sni=x": unknown option "sni" (known: resolver, rate)`},
		{true, "dns://:53", `"dns://:53": want dns://[HOST]:PORT/ZONE: zone "": want a domain name of at most 200 characters`},
		{true, "dns://:53/t.example?resolver=1.1.1.1:53", `"dns://:53/t.example?resolver=1.1.1.1:53": a listener takes no options`},
	} {
		parse, name := ParseURL, "ParseURL"
		if tc.listen {
			parse, name = ParseListenURL, "ParseListenURL"
		}
		if u, err := parse(tc.in); err == nil || err.Error() != tc.err {
			t.Errorf("%s(%q) = %+v, %v; want the error %s", name, tc.in, u, err, tc.err)
		}
	}
}

func TestURLString(t *testing.T) {
	u := URL{Scheme: "wss", Host: "o.example:443", Path: "/t", Connect: "192.0.2.1:443", SNI: "cdn.example"}
	if got, want := u.String(), "wss://o.example:443/t?connect=192.0.2.1%3A443&sni=cdn.example"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for scheme, want := range map[string]bool{"ws": false, "wss": true, "quic": true, "dns": true} {
		if got := (URL{Scheme: scheme}).TLS(); got != want {
			t.Errorf("%s: TLS() = %v, want %v", scheme, got, want)
		}
	}
}

// FuzzParseURL checks that what parses prints back to something that
// parses the same, as the start's log line and peers' names rely on.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"wss://a.example/t?connect=1.2.3.4:443&sni=b.example", "ws://[::1]:8080/", "ws://h", "quic://:443", "quic://h:1", "dns://t.example?resolver=127.0.0.1:53&rate=5", "dns://:53/t.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if u, err := ParseURL(s); err == nil {
			u2, err := ParseURL(u.String())
			if err != nil || u2 != u {
				t.Fatalf("%q parsed as %+v, which prints as %q and parses as %+v, %v", s, u, u.String(), u2, err)
			}
		}
		if u, err := ParseListenURL(s); err == nil {
			u2, err := ParseListenURL(u.String())
			if err != nil || u2 != u {
				t.Fatalf("listener %q parsed as %+v, which prints as %q and parses as %+v, %v", s, u, u.String(), u2, err)
			}
		}
	})
}
