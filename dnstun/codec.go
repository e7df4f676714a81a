// Package dnstun carries datagrams in DNS messages, for a tunnel that
// crosses recursive resolvers when nothing else leaves a country: upstream
// in the names of queries under a zone, downstream in TXT answers from the
// zone's authoritative server.
//
// Protocol flow:
//
//	edge (Client)            resolver                 origin (Server, authoritative for ZONE)
//	 |-- TXT? <b32 of msg>.ZONE -->|-- (cache miss) ------->|  msg = Upstream: session, seq, cap, mac, datagram
//	 |                             |<-- TXT "len|dgram..." -|  answered at once with what is queued for the
//	 |<-- the same answer ---------|                        |  session, or held up to Hold for something to come
//
// Every query name is unique (the sequence number), so no cache answers
// one. The client polls with empty upstream messages when it has nothing to
// send, so that the server has a query to answer with. Each query is
// authenticated with a MAC keyed by the shared secret: a query whose MAC,
// session or sequence does not check out (a stranger's, or a replay) gets
// the answer of any unknown name, an empty NOERROR, and never reaches the
// reliable layer above (kcp, TLS, yamux).
package dnstun

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Upstream message, before base32 (all integers big-endian):
//
//	+---------+--------+-------+--------+------------------+
//	| session | seq    | cap   | mac    | datagram         |
//	| 8 bytes | 4      | 1     | 8      | 0 or more        |
//	+---------+--------+-------+--------+------------------+
//
// session is 4 random bytes and the session's start in unix seconds (4), so
// that the server takes a new session only near its start: a replay of a
// session's first query after it ended is refused. seq counts the session's
// queries from 0. cap is the largest DNS answer the client takes, in units
// of CapUnit: the client lowers it when it finds answers truncated. mac is
// the first 8 bytes of HMAC-SHA256(key, session|seq|cap|datagram).
const (
	SessionLen = 8
	HeaderLen  = SessionLen + 4 + 1 + macLen
	macLen     = 8
	// CapUnit is the unit of an upstream message's answer size.
	CapUnit = 32
)

// MaxName and MaxLabel are DNS's limits on a name in text form (without
// its final dot) and on one label (RFC 1035 §2.3.4).
const (
	MaxName  = 253
	MaxLabel = 63
)

// encoding is base32 without padding, in lower case: resolvers keep a
// name's bytes but may randomise the case of its letters (0x20 encoding),
// so the decoder folds case first.
var encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// SessionID names one client session on a server.
type SessionID [SessionLen]byte

func (s SessionID) String() string { return fmt.Sprintf("%x", s[:]) }

// Upstream is one query's message.
type Upstream struct {
	Session SessionID
	Seq     uint32
	Cap     int // the largest answer taken, in bytes, a multiple of CapUnit up to 255 units
	Data    []byte
}

var (
	errNotTunnel = errors.New("not a tunnel query")
	errMAC       = errors.New("tunnel query's MAC is wrong")
)

// Key derives the MAC key of queries from the shared secret.
func Key(secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("ferry dns tunnel v1"))
	return m.Sum(nil)
}

func mac(key []byte, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)[:macLen]
}

// capByte is c in CapUnit, within a byte; 0 means 512, DNS's size without
// EDNS.
func capByte(c int) byte {
	if c <= 0 {
		c = 512
	}
	return byte(min(c/CapUnit, 255))
}

// Zone is a DNS zone in canonical form: lower case, with its final dot.
type Zone string

// ParseZone checks a zone's name: labels of 1 to 63 letters, digits and
// hyphens, and room under it for a query (at most 200 characters).
func ParseZone(s string) (Zone, error) {
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	if s == "" || len(s) > 200 {
		return "", fmt.Errorf("zone %q: want a domain name of at most 200 characters", s)
	}
	for l := range strings.SplitSeq(s, ".") {
		if l == "" || len(l) > MaxLabel || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("zone %q: label %q is not a host name's", s, l)
		}
	}
	return Zone(s + "."), nil
}

// chars is how many base32 characters fit in the labels of a name under z:
// labels of MaxLabel, each with its dot, within MaxName with z.
func (z Zone) chars() int {
	room := MaxName - len(z) // z's final dot stands for the dot before it
	// n characters take n + ceil(n/63) with their dots.
	n := room - (room+MaxLabel)/(MaxLabel+1)
	for n+(n+MaxLabel-1)/MaxLabel > room {
		n--
	}
	return n
}

// MaxData is the largest datagram an upstream message under z carries.
func (z Zone) MaxData() int { return z.chars()*5/8 - HeaderLen }

// EncodeName returns the query name of u under z, signed with key. It fails
// when u.Data is longer than z.MaxData().
func (z Zone) EncodeName(key []byte, u Upstream) (string, error) {
	if len(u.Data) > z.MaxData() {
		return "", fmt.Errorf("dnstun: a datagram of %d bytes exceeds the %d a name under %s carries", len(u.Data), z.MaxData(), z)
	}
	b := make([]byte, HeaderLen+len(u.Data))
	copy(b, u.Session[:])
	binary.BigEndian.PutUint32(b[SessionLen:], u.Seq)
	b[SessionLen+4] = capByte(u.Cap)
	copy(b[HeaderLen:], u.Data)
	signed := append(b[:SessionLen+5:SessionLen+5], u.Data...)
	copy(b[SessionLen+5:], mac(key, signed))
	text := encoding.EncodeToString(b)
	var sb strings.Builder
	sb.Grow(len(text) + len(text)/MaxLabel + 1 + len(z))
	for len(text) > 0 {
		n := min(len(text), MaxLabel)
		sb.WriteString(text[:n])
		sb.WriteByte('.')
		text = text[n:]
	}
	sb.WriteString(string(z))
	return sb.String(), nil
}

// DecodeName parses a query name under z, in any case, and checks its MAC
// with key. It returns errNotTunnel for a name that is not a tunnel query
// (under z or not), and errMAC for one whose MAC is wrong. u.Data is a new
// slice.
func (z Zone) DecodeName(key []byte, name string) (Upstream, error) {
	if len(name) > MaxName+1 {
		return Upstream{}, errNotTunnel
	}
	lower := strings.ToLower(name)
	if !strings.HasSuffix(lower, "."+string(z)) {
		return Upstream{}, errNotTunnel
	}
	labels := strings.TrimSuffix(lower, "."+string(z))
	text := strings.ReplaceAll(labels, ".", "")
	// Labels as EncodeName makes them: all of MaxLabel but the last.
	for i, l := 0, labels; l != ""; i++ {
		j := strings.IndexByte(l, '.')
		if j < 0 {
			if len(l) > MaxLabel {
				return Upstream{}, errNotTunnel
			}
			break
		}
		if j != MaxLabel {
			return Upstream{}, errNotTunnel
		}
		l = l[j+1:]
	}
	b, err := encoding.DecodeString(text)
	if err != nil || len(b) < HeaderLen || encoding.EncodeToString(b) != text {
		// The last check refuses a name whose final character has bits
		// past the end set: two names must never decode alike.
		return Upstream{}, errNotTunnel
	}
	var u Upstream
	copy(u.Session[:], b)
	u.Seq = binary.BigEndian.Uint32(b[SessionLen:])
	u.Cap = int(b[SessionLen+4]) * CapUnit
	if u.Cap == 0 {
		u.Cap = 512
	}
	got := b[SessionLen+5 : HeaderLen]
	u.Data = b[HeaderLen:]
	signed := append(append([]byte(nil), b[:SessionLen+5]...), u.Data...)
	if !hmac.Equal(got, mac(key, signed)) {
		return Upstream{}, errMAC
	}
	return u, nil
}

// longestName is a query name of the greatest length under z.
func (z Zone) longestName() string {
	name, _ := z.EncodeName(nil, Upstream{Data: make([]byte, z.MaxData())})
	return name
}
