package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"ferry/tunnel"
)

// response is what a prober sees of one HTTP request, Date aside.
type response struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, client *http.Client, url string, header http.Header) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	maps.Copy(req.Header, header)
	if h := header.Get("Host"); h != "" {
		req.Host = h // net/http sends req.Host, not a Host header
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Header.Del("Date")
	return response{resp.StatusCode, resp.Header, string(body)}
}

func upgradeHeader(token string) http.Header {
	h := http.Header{}
	h.Set("Connection", "Upgrade")
	h.Set("Upgrade", "websocket")
	h.Set("Sec-WebSocket-Version", "13")
	h.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if token != "" {
		h.Set("Cookie", tunnel.TokenCookie+"="+token)
	}
	return h
}

// upgradeCookie is the header a dial with token adds to coder/websocket's.
func upgradeCookie(token string) http.Header {
	return http.Header{"Cookie": {tunnel.TokenCookie + "=" + token}}
}

// bearerHeader is an upgrade with the token where edges carried it before
// it moved to a cookie.
func bearerHeader(token string) http.Header {
	h := upgradeHeader("")
	h.Set("Authorization", "Bearer "+token)
	return h
}

// TestDecoy checks that every request without a valid token, on the tunnel
// path or any other, gets what an ordinary web site gives for a page it
// does not have, and opens no session.
func TestDecoy(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		if scheme == "quic" {
			t.Skip("no HTTP over QUIC: see TestQUICRefusesStrangers")
		}
		o := startOrigin(t, scheme, "127.0.0.1:0", map[string][]string{"chat": {"127.0.0.1:1"}})
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DialContext: clientDialer.DialContext}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}
		base := strings.Replace(strings.TrimSuffix(o.url, "/tunnel"), "ws", "http", 1)

		now := time.Now()
		// Tokens are bound to the Host and path the edge dials.
		token := func(secret string, at time.Time) string { return tunnel.Token(secret, at, "127.0.0.1", "/tunnel") }
		replayed := token(secret, now)
		// A real edge's dial with this token succeeds, once.
		c, _, err := websocket.Dial(context.Background(), o.url, &websocket.DialOptions{
			HTTPClient: client,
			HTTPHeader: upgradeCookie(replayed),
		})
		if err != nil {
			t.Fatalf("dial with a good token: %v", err)
		}
		c.CloseNow()

		if home := get(t, client, base+"/", nil); home.status != http.StatusOK || !strings.Contains(home.body, "<html") {
			t.Fatalf("decoy is %d %q", home.status, home.body)
		}
		want := get(t, client, base+"/no-such-page", nil)
		if want.status != http.StatusNotFound {
			t.Fatalf("decoy's missing page is %d %q", want.status, want.body)
		}
		cases := []struct {
			name, path string
			header     http.Header
		}{
			{"other path", "/favicon.ico", nil},
			{"tunnel path, plain GET", "/tunnel", nil},
			{"no token", "/tunnel", upgradeHeader("")},
			{"garbage token", "/tunnel", upgradeHeader("hello")},
			{"wrong secret", "/tunnel", upgradeHeader(token("another-secret-0123456789-0123456789", now))},
			{"expired", "/tunnel", upgradeHeader(token(secret, now.Add(-2*tunnel.MaxSkew)))},
			{"from the future", "/tunnel", upgradeHeader(token(secret, now.Add(2*tunnel.MaxSkew)))},
			{"replayed", "/tunnel", upgradeHeader(replayed)},
			{"good token, other path", "/other", upgradeHeader(token(secret, now))},
			{"token for another host", "/tunnel", upgradeHeader(tunnel.Token(secret, now, "other.example", "/tunnel"))},
			{"token for another path", "/tunnel", upgradeHeader(tunnel.Token(secret, now, "127.0.0.1", "/other"))},
			{"good token in Authorization", "/tunnel", bearerHeader(token(secret, now))},
		}
		before := o.ws.AuthFailures.Load()
		for _, tc := range cases {
			got := get(t, client, base+tc.path, tc.header)
			if got.status != want.status || got.body != want.body || !maps.EqualFunc(got.header, want.header, func(a, b []string) bool {
				return strings.Join(a, ",") == strings.Join(b, ",")
			}) {
				t.Errorf("%s: got %d %v, want the decoy's %d %v", tc.name, got.status, got.header, want.status, want.header)
			}
		}
		if n := o.srv.Stats().Sessions; n != 0 {
			t.Errorf("%d sessions open after refused requests", n)
		}
		if n := o.ws.AuthFailures.Load() - before; n != 9 {
			t.Errorf("%d authentication failures counted, want 9", n)
		}
	})
}

// TestTokenAtAnotherOrigin checks that a token seen at one origin is refused,
// with the decoy, at another with the same secret, as a CDN that routes by
// the Host header would carry it there, and is still good where it was
// meant for.
func TestTokenAtAnotherOrigin(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		if scheme == "quic" {
			t.Skip("no token over QUIC: its hellos are bound to their TLS session")
		}
		targets := map[string][]string{"chat": {"127.0.0.1:1"}}
		a := startOrigin(t, scheme, "127.0.0.1:0", targets)
		b := startOrigin(t, scheme, "127.0.0.1:0", targets)
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DialContext: clientDialer.DialContext}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}
		base := func(o *originProc) string { return strings.Replace(o.url, "ws", "http", 1) }

		captured := tunnel.Token(secret, time.Now(), "a.example", "/tunnel")
		at := func(o *originProc, host string) response {
			h := upgradeHeader(captured)
			h.Set("Host", host)
			return get(t, client, base(o), h)
		}
		decoy := get(t, client, strings.TrimSuffix(base(b), "/tunnel")+"/no-such-page", nil)
		if got := at(b, "b.example"); got.status != decoy.status || got.body != decoy.body {
			t.Errorf("origin A's token at origin B: %d, want the decoy's %d", got.status, decoy.status)
		}
		if n := b.ws.AuthFailures.Load(); n != 1 {
			t.Errorf("origin B counted %d authentication failures, want 1", n)
		}
		// At A, under the name it was minted for (a front's port aside).
		c, _, err := websocket.Dial(context.Background(), a.url, &websocket.DialOptions{
			HTTPClient: client,
			HTTPHeader: upgradeCookie(captured),
			Host:       "a.example:443",
		})
		if err != nil {
			t.Fatalf("origin A's token at origin A: %v", err)
		}
		c.CloseNow()
	})
}
