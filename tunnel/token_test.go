package tunnel

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	const host, path = "a.example", "/tunnel"
	now := time.Unix(1_800_000_000, 0)
	v := NewVerifier(secret)
	v.now = func() time.Time { return now }

	good := Token(secret, now.Add(-time.Minute), host, path)
	if err := v.Verify(good, host, path); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	if a, b := Token(secret, now, host, path), Token(secret, now, host, path); a == b {
		t.Fatal("two tokens at the same second are equal")
	}
	for name, tok := range map[string]string{
		"replayed":     good,
		"expired":      Token(secret, now.Add(-MaxSkew-time.Second), host, path),
		"future":       Token(secret, now.Add(MaxSkew+time.Second), host, path),
		"wrong secret": Token(secret+"x", now, host, path),
		"other host":   Token(secret, now, "b.example", path),
		"other path":   Token(secret, now, host, "/other"),
		"old version":  oldVersion(Token(secret, now, host, path)),
		"truncated":    good[:len(good)-1],
		"not base64":   strings.Repeat("*", len(good)),
		"flipped bit":  flip(Token(secret, now, host, path)),
		"empty":        "",
	} {
		if err := v.Verify(tok, host, path); !errors.Is(err, ErrBadToken) {
			t.Errorf("%s: %v, want ErrBadToken", name, err)
		}
	}

	// Nonces are forgotten once their tokens have expired, and not before.
	now = now.Add(MaxSkew + time.Minute)
	if err := v.Verify(Token(secret, now, host, path), host, path); err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	n := len(v.seen)
	v.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d nonces remembered after expiry, want 1", n)
	}
}

func flip(tok string) string {
	b := []byte(tok)
	if b[10] == 'A' {
		b[10] = 'B'
	} else {
		b[10] = 'A'
	}
	return string(b)
}

func oldVersion(tok string) string {
	b, _ := base64.RawURLEncoding.DecodeString(tok)
	b[0] = 1
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestTokenHost checks that the Host header a front passes on (its own
// port, a final dot or capitals changed) still matches the edge's URL host.
func TestTokenHost(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	v := NewVerifier(secret)
	for _, tc := range []struct{ minted, got string }{
		{"origin.example:443", "origin.example"},
		{"Origin.Example", "origin.example.:8080"},
		{"[2001:db8::1]:443", "[2001:db8::1]"},
		{"127.0.0.1:18090", "127.0.0.1:18091"},
	} {
		if err := v.Verify(Token(secret, time.Now(), tc.minted, "/t"), tc.got, "/t"); err != nil {
			t.Errorf("minted for %s, at %s: %v", tc.minted, tc.got, err)
		}
	}
}

// TestVerifyRequest checks where a request's token is looked for: the first
// TokenCookie of its Cookie headers, among any others, and nowhere else.
func TestVerifyRequest(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	now := time.Unix(1_800_000_000, 0)
	tok := func() string { return Token(secret, now, "a.example", "/t") }
	for _, tc := range []struct {
		name   string
		header http.Header
		ok     bool
	}{
		{"cookie", http.Header{"Cookie": {tokenCookie(tok())}}, true},
		{"among others", http.Header{"Cookie": {"theme=dark; " + tokenCookie(tok()) + "; _ga=GA1.2.3"}}, true},
		{"second Cookie header", http.Header{"Cookie": {"theme=dark", tokenCookie(tok())}}, true},
		{"quoted", http.Header{"Cookie": {TokenCookie + `="` + tok() + `"`}}, true},
		{"Authorization", http.Header{"Authorization": {"Bearer " + tok()}}, false},
		{"other name", http.Header{"Cookie": {"session=" + tok()}}, false},
		{"first one bad", http.Header{"Cookie": {TokenCookie + "=x; " + tokenCookie(tok())}}, false},
		{"none", http.Header{}, false},
	} {
		v := NewVerifier(secret)
		v.now = func() time.Time { return now }
		r := &http.Request{Host: "a.example:443", URL: &url.URL{Path: "/t"}, Header: tc.header}
		got, err := v.VerifyRequest(r)
		if tc.ok && (err != nil || got == "") {
			t.Errorf("%s: %q, %v; want the token", tc.name, got, err)
		}
		if !tc.ok && (!errors.Is(err, ErrBadToken) || got != "") {
			t.Errorf("%s: %q, %v; want ErrBadToken", tc.name, got, err)
		}
	}
}

// FuzzVerifyRequest feeds Cookie headers to VerifyRequest: it never panics,
// refuses with ErrBadToken, and accepts a token once only.
func FuzzVerifyRequest(f *testing.F) {
	const secret = "0123456789abcdef0123456789abcdef"
	now := time.Unix(1_800_000_000, 0)
	good := Token(secret, now, "a.example", "/t")
	for _, s := range []string{
		tokenCookie(good), "a=b; " + tokenCookie(good) + "; c=d", TokenCookie + `="` + good + `"`,
		TokenCookie + "=", TokenCookie + "=" + good[:20], "=;;;", "\x00" + TokenCookie + "=" + good, "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cookie string) {
		v := NewVerifier(secret)
		v.now = func() time.Time { return now }
		r := &http.Request{Host: "a.example", URL: &url.URL{Path: "/t"}, Header: http.Header{"Cookie": {cookie}}}
		tok, err := v.VerifyRequest(r)
		if err != nil {
			if !errors.Is(err, ErrBadToken) || tok != "" {
				t.Fatalf("refused with %q, %v", tok, err)
			}
			return
		}
		if _, err := v.VerifyRequest(r); !errors.Is(err, ErrBadToken) {
			t.Fatalf("token %q accepted twice", tok)
		}
	})
}
