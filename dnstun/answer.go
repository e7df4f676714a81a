package dnstun

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// Downstream, an answer carries datagrams in one TXT record named as the
// question, its character-strings (255 bytes each but the last) together
// holding frames:
//
//	+--------+----------+--------+----------+...
//	| len    | datagram | len    | datagram |
//	| 2      | len      | 2      | len      |
//	+--------+----------+--------+----------+...
//
// An answer with nothing to send has one empty string (a TXT record must
// have one). TXT because resolvers carry it everywhere and it wastes one
// byte in 256; its TTL is 0, and its name unique, so no cache keeps it.

// MinAnswer is the answer size every resolver takes: DNS's without EDNS.
const MinAnswer = 512

// MaxAnswer caps the EDNS size answers are made for, whatever a query
// offers: the largest that resolvers commonly take over UDP.
const MaxAnswer = 4096

// frameLen is a downstream frame's length field.
const frameLen = 2

// txtLen is the length of a TXT record's data carrying n bytes: a length
// byte for each string of 255 or fewer, and one empty string for none.
func txtLen(n int) int {
	if n == 0 {
		return 1
	}
	return n + (n+254)/255
}

// answerBuilder fills the TXT answer of one response within a size.
type answerBuilder struct {
	resp  *dns.Msg
	limit int
	room  int // bytes left for the TXT data beyond its empty string
	data  []byte
}

// newAnswer starts the answer to q, a query for a TXT record, within
// limit bytes. It fails when not even an empty answer fits.
func newAnswer(q *dns.Msg, limit int) (*answerBuilder, error) {
	resp := new(dns.Msg)
	resp.SetReply(q)
	resp.Authoritative = true
	resp.Compress = true
	if o := q.IsEdns0(); o != nil {
		// What BIND and most servers advertise since DNS flag day 2020.
		resp.SetEdns0(1232, false)
	}
	txt := &dns.RFC3597{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 0}, Rdata: "00"}
	resp.Answer = []dns.RR{txt}
	base := resp.Len()
	if base > limit {
		return nil, fmt.Errorf("dnstun: an empty answer takes %d bytes, more than %d", base, limit)
	}
	return &answerBuilder{resp: resp, limit: limit, room: limit - base + txtLen(0)}, nil
}

// add appends d as a frame if it fits, and reports whether it did.
func (a *answerBuilder) add(d []byte) bool {
	if txtLen(len(a.data)+frameLen+len(d)) > a.room {
		return false
	}
	a.data = binary.BigEndian.AppendUint16(a.data, uint16(len(d)))
	a.data = append(a.data, d...)
	return true
}

// fits reports whether a datagram of n bytes would fit in an empty answer.
func (a *answerBuilder) fits(n int) bool { return txtLen(frameLen+n) <= a.room }

// pack returns the response in wire form.
func (a *answerBuilder) pack() ([]byte, error) {
	var rd []byte
	if len(a.data) == 0 {
		rd = []byte{0}
	}
	for d := a.data; len(d) > 0; {
		n := min(len(d), 255)
		rd = append(rd, byte(n))
		rd = append(rd, d[:n]...)
		d = d[n:]
	}
	a.resp.Answer[0].(*dns.RFC3597).Rdata = hex.EncodeToString(rd)
	return a.resp.Pack()
}

// MaxDownstream is the largest datagram that an answer within limit
// carries for a question of the longest name under z, with EDNS.
func (z Zone) MaxDownstream(limit int) int {
	q := new(dns.Msg)
	q.SetQuestion(z.longestName(), dns.TypeTXT)
	q.SetEdns0(MaxAnswer, false)
	a, err := newAnswer(q, limit)
	if err != nil {
		return 0
	}
	n := 0
	for a.fits(n + 1) {
		n++
	}
	return n
}

// errTruncated is what DecodeAnswer returns for an answer a resolver cut
// short: its datagrams are lost, and answers must get smaller.
var errTruncated = errors.New("dnstun: answer truncated")

// DecodeAnswer parses the response r to the TXT query of name (compared
// without case) and returns its datagrams. An answer that is not a tunnel
// answer (an error code, no TXT record) is an error.
func DecodeAnswer(r []byte, name string) ([][]byte, error) {
	m := new(dns.Msg)
	if err := m.Unpack(r); err != nil {
		return nil, fmt.Errorf("dnstun: answer: %w", err)
	}
	return decodeMsg(m, name)
}

func decodeMsg(m *dns.Msg, name string) ([][]byte, error) {
	if !m.Response {
		return nil, errors.New("dnstun: a query where an answer was due")
	}
	if m.Truncated {
		return nil, errTruncated
	}
	if m.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("dnstun: answer %s", dns.RcodeToString[m.Rcode])
	}
	for _, rr := range m.Answer {
		h := rr.Header()
		if h.Rrtype != dns.TypeTXT || !strings.EqualFold(h.Name, name) {
			continue
		}
		// miekg/dns unpacks TXT strings escaped; RFC 3597's form is the
		// record's data as sent.
		var raw dns.RFC3597
		if err := raw.ToRFC3597(rr); err != nil {
			return nil, fmt.Errorf("dnstun: answer's TXT: %w", err)
		}
		rd, err := hex.DecodeString(raw.Rdata)
		if err != nil {
			return nil, fmt.Errorf("dnstun: answer's TXT: %w", err)
		}
		return parseTXT(rd)
	}
	// An empty NOERROR: what the server answers to a query it does not
	// take (a retry of one already answered, or a session it ended).
	return nil, errNoTXT
}

var errNoTXT = errors.New("dnstun: answer without a TXT record")

// parseTXT splits a TXT record's data into the frames its strings hold.
func parseTXT(rd []byte) ([][]byte, error) {
	var data []byte
	for len(rd) > 0 {
		n := int(rd[0])
		if 1+n > len(rd) {
			return nil, errors.New("dnstun: TXT string runs past its record")
		}
		data = append(data, rd[1:1+n]...)
		rd = rd[1+n:]
	}
	var ds [][]byte
	for len(data) > 0 {
		if len(data) < frameLen {
			return nil, errors.New("dnstun: a frame's length is cut")
		}
		n := int(binary.BigEndian.Uint16(data))
		if frameLen+n > len(data) {
			return nil, errors.New("dnstun: a frame runs past its answer")
		}
		ds = append(ds, data[frameLen:frameLen+n])
		data = data[frameLen+n:]
	}
	return ds, nil
}
