package tunnel

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"
)

// An edge proves that it knows the shared secret with a token in the
// WebSocket upgrade request's Authorization header ("Bearer TOKEN"). The
// token is base64url (no padding) of 57 bytes:
//
//	version (1) = 1 | unix time, seconds (8, big-endian) | nonce (16) | MAC (32)
//
// where MAC = HMAC-SHA256(key, the first 25 bytes) and
// key = HMAC-SHA256(secret, "ferry tunnel token v1"). The origin accepts a
// token whose time is within MaxSkew of its own clock, and each nonce once:
// it remembers nonces for as long as their tokens could be accepted.

// MaxSkew is how far a token's time may be from the origin's clock, either way.
const MaxSkew = 2 * time.Minute

const (
	tokenVersion = 1
	tokenSigned  = 1 + 8 + 16
	tokenLen     = tokenSigned + sha256.Size
	nonceLen     = 16
)

// ErrBadToken is the error of every rejected token; the wrapped detail is for
// debug logs only.
var ErrBadToken = errors.New("bad tunnel token")

func tokenKey(secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("ferry tunnel token v1"))
	return m.Sum(nil)
}

// Token makes a fresh token for secret at time now.
func Token(secret string, now time.Time) string {
	var b [tokenLen]byte
	b[0] = tokenVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(now.Unix()))
	rand.Read(b[9:tokenSigned])
	m := hmac.New(sha256.New, tokenKey(secret))
	m.Write(b[:tokenSigned])
	m.Sum(b[:tokenSigned])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Verifier checks tokens and remembers their nonces. It is safe for
// concurrent use.
type Verifier struct {
	key []byte
	now func() time.Time // a test seam; time.Now when nil

	mu        sync.Mutex
	seen      map[[nonceLen]byte]time.Time // nonce → when it can be forgotten
	lastPrune time.Time
}

// NewVerifier returns a Verifier for secret.
func NewVerifier(secret string) *Verifier {
	return &Verifier{key: tokenKey(secret), seen: map[[nonceLen]byte]time.Time{}}
}

// VerifyRequest checks the token of an upgrade request.
func (v *Verifier) VerifyRequest(r *http.Request) error {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return errors.Join(ErrBadToken, errors.New("no bearer token"))
	}
	return v.Verify(tok)
}

// Verify checks a token and consumes its nonce.
func (v *Verifier) Verify(token string) error {
	if base64.RawURLEncoding.DecodedLen(len(token)) != tokenLen {
		return errors.Join(ErrBadToken, errors.New("wrong length"))
	}
	var b [tokenLen]byte
	if _, err := base64.RawURLEncoding.Decode(b[:], []byte(token)); err != nil {
		return errors.Join(ErrBadToken, errors.New("not base64url"))
	}
	m := hmac.New(sha256.New, v.key)
	m.Write(b[:tokenSigned])
	if !hmac.Equal(m.Sum(nil), b[tokenSigned:]) || b[0] != tokenVersion {
		return errors.Join(ErrBadToken, errors.New("wrong MAC"))
	}
	now := time.Now()
	if v.now != nil {
		now = v.now()
	}
	at := time.Unix(int64(binary.BigEndian.Uint64(b[1:9])), 0)
	if at.Before(now.Add(-MaxSkew)) || at.After(now.Add(MaxSkew)) {
		return errors.Join(ErrBadToken, errors.New("expired"))
	}
	nonce := [nonceLen]byte(b[9:tokenSigned])

	v.mu.Lock()
	defer v.mu.Unlock()
	if now.Sub(v.lastPrune) > MaxSkew {
		for n, until := range v.seen {
			if now.After(until) {
				delete(v.seen, n)
			}
		}
		v.lastPrune = now
	}
	if _, dup := v.seen[nonce]; dup {
		return errors.Join(ErrBadToken, errors.New("replayed"))
	}
	v.seen[nonce] = at.Add(MaxSkew)
	return nil
}
