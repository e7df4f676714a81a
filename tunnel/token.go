package tunnel

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"ferry/decoy"
)

// An edge proves that it knows the shared secret with a token in a cookie
// of the WebSocket upgrade request, "Cookie: sid=TOKEN" (TokenCookie): a
// page's WebSocket in a browser carries its credentials in cookies and can
// send no Authorization header, and the edge's upgrade is a browser's
// (upgrade.go). The name is an ordinary session cookie's. The token is
// base64url (no padding) of 57 bytes, which a cookie value may hold as is:
//
//	version (1) = 2 | unix time, seconds (8, big-endian) | nonce (16) | MAC (32)
//
// where MAC = HMAC-SHA256(key, the first 25 bytes | len(host) (2, big-endian)
// | host | path) and key = HMAC-SHA256(secret, "ferry tunnel token v1"). The
// origin accepts a token whose time is within MaxSkew of its own clock, and
// each nonce once: it remembers nonces for as long as their tokens could be
// accepted.
//
// A token is good at one origin only: it is bound to the host and path the
// edge dialled, as the request carries them. host is the Host header's name,
// lower-cased, without its port or a final dot (TokenHost): a CDN or
// ingress in front of the origin passes the name on and routes by it, but
// its own port is its own. path is the request's path, which the listener
// matches exactly. The origin checks a token against the Host and path of
// the request it came in, so a token seen at one origin (by a CDN that ends
// TLS, say) is refused, with the decoy, at another origin with the same
// secret: through a front, the Host routes to the origin it names; at
// another path, the path differs. What the binding cannot stop is a replay
// straight to another origin's address with the Host header forged: the
// origin knows its path, not the names it is reached by. Origins that
// share a secret and can be reached directly should therefore have paths
// of their own. The nonce still makes every token good once.
//
// A front that rewrites the Host header (nginx without
// "proxy_set_header Host $host") makes every token fail: the edge's error
// says so. QUIC carries no token: its hellos are bound to the TLS exporter
// of their very connection (hello.go), which no other connection, at this
// origin or another, shares.

// TokenCookie is the name of the cookie that carries the token; a decoy
// that reverse-proxies a site does not pass it on.
const TokenCookie = decoy.TokenCookie

// tokenCookie is the Cookie header of an upgrade that carries token.
func tokenCookie(token string) string {
	return (&http.Cookie{Name: TokenCookie, Value: token}).String()
}

// MaxSkew is how far a token's time may be from the origin's clock, either way.
const MaxSkew = 2 * time.Minute

const (
	tokenVersion = 2 // 1: before tokens were bound to a host and path
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

// Token makes a fresh token for secret at time now, good for a request to
// host (a Host header or a URL's host; TokenHost reduces it) and path.
func Token(secret string, now time.Time, host, path string) string {
	var b [tokenLen]byte
	b[0] = tokenVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(now.Unix()))
	rand.Read(b[9:tokenSigned])
	tokenMAC(tokenKey(secret), b[:tokenSigned], host, path).Sum(b[:tokenSigned])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func tokenMAC(key, signed []byte, host, path string) hash.Hash {
	host = TokenHost(host)
	m := hmac.New(sha256.New, key)
	m.Write(signed)
	m.Write(binary.BigEndian.AppendUint16(nil, uint16(len(host))))
	m.Write([]byte(host))
	m.Write([]byte(path))
	return m
}

// TokenHost is the part of a Host header (or a URL's host) that tokens are
// bound to: the name or IP address, lower-cased, without a port, brackets
// or a final dot.
func TokenHost(h string) string {
	if name, _, err := net.SplitHostPort(h); err == nil {
		h = name
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.ToLower(strings.TrimSuffix(h, "."))
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

// VerifyRequest checks the token of an upgrade request against the
// request's own Host and path, and returns it. The token is the first
// TokenCookie of the request's Cookie headers; no other carrier counts (an
// Authorization header, which edges sent before, is ignored).
func (v *Verifier) VerifyRequest(r *http.Request) (string, error) {
	c, err := r.Cookie(TokenCookie)
	if err != nil {
		return "", errors.Join(ErrBadToken, errors.New("no token cookie"))
	}
	if err := v.Verify(c.Value, r.Host, r.URL.Path); err != nil {
		return "", err
	}
	return c.Value, nil
}

// Verify checks a token for a request to host and path, and consumes its
// nonce.
func (v *Verifier) Verify(token, host, path string) error {
	if base64.RawURLEncoding.DecodedLen(len(token)) != tokenLen {
		return errors.Join(ErrBadToken, errors.New("wrong length"))
	}
	var b [tokenLen]byte
	if _, err := base64.RawURLEncoding.Decode(b[:], []byte(token)); err != nil {
		return errors.Join(ErrBadToken, errors.New("not base64url"))
	}
	if b[0] != tokenVersion {
		return errors.Join(ErrBadToken, fmt.Errorf("version %d, want %d (an edge older than this origin?)", b[0], tokenVersion))
	}
	if !hmac.Equal(tokenMAC(v.key, b[:tokenSigned], host, path).Sum(nil), b[tokenSigned:]) {
		return errors.Join(ErrBadToken, errors.New("wrong MAC: another secret, or minted for another host or path (a front that rewrites the Host header?)"))
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
