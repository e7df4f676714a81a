package tunnel

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	now := time.Unix(1_800_000_000, 0)
	v := NewVerifier(secret)
	v.now = func() time.Time { return now }

	good := Token(secret, now.Add(-time.Minute))
	if err := v.Verify(good); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	if a, b := Token(secret, now), Token(secret, now); a == b {
		t.Fatal("two tokens at the same second are equal")
	}
	for name, tok := range map[string]string{
		"replayed":     good,
		"expired":      Token(secret, now.Add(-MaxSkew-time.Second)),
		"future":       Token(secret, now.Add(MaxSkew+time.Second)),
		"wrong secret": Token(secret+"x", now),
		"truncated":    good[:len(good)-1],
		"not base64":   strings.Repeat("*", len(good)),
		"flipped bit":  flip(Token(secret, now)),
		"empty":        "",
	} {
		if err := v.Verify(tok); !errors.Is(err, ErrBadToken) {
			t.Errorf("%s: %v, want ErrBadToken", name, err)
		}
	}

	// Nonces are forgotten once their tokens have expired, and not before.
	now = now.Add(MaxSkew + time.Minute)
	if err := v.Verify(Token(secret, now)); err != nil {
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
