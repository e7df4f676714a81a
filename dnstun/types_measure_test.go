package dnstun

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"ferry/internal/unbound"
)

// TestMeasureRecordTypes prints how many bytes of data one answer carries
// through a real resolver (Debian's unbound on loopback) for each record
// type a tunnel could answer in, at each EDNS size: one TXT record (what
// the transport sends), several TXT records, and one NULL record. An
// authoritative server of the test's own fills each answer to the size the
// resolver offers it; the test counts what reaches the stub. It runs only
// with FERRY_MEASURE set:
//
//	FERRY_MEASURE=1 go test -run TestMeasureRecordTypes -v ./dnstun
func TestMeasureRecordTypes(t *testing.T) {
	if os.Getenv("FERRY_MEASURE") == "" {
		t.Skip("set FERRY_MEASURE=1 to measure")
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(fill)}
	go srv.ActivateAndServe()
	defer srv.Shutdown()
	for _, size := range []int{512, 1232, 4096} {
		r := unbound.Start(t, "m.example.", pc.LocalAddr().String(), unbound.Options{EDNSSize: size})
		for _, kind := range []string{"txt", "txts", "null"} {
			n, err := carried(r.Addr, kind)
			if err != nil {
				t.Logf("EDNS %4d, %-4s: %v", size, kind, err)
				continue
			}
			t.Logf("EDNS %4d, %-4s: %4d bytes of data in one answer", size, kind, n)
		}
		r.Stop()
	}
}

// fill answers a query for KIND-NONCE.m.example with as much data as the
// size the query offers allows, in records of KIND.
func fill(w dns.ResponseWriter, q *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(q)
	resp.Authoritative = true
	limit := dns.MinMsgSize
	if o := q.IsEdns0(); o != nil {
		limit = int(o.UDPSize())
		resp.SetEdns0(o.UDPSize(), false)
	}
	name := q.Question[0].Name
	kind := name[:len(name)-len("-0123456789abcdef.m.example.")]
	hdr := func(typ uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: 0}
	}
	// Grow the answer until it no longer fits, then take the last that did.
	var fit []dns.RR
	for n := 1; ; n++ {
		var rrs []dns.RR
		switch kind {
		case "txt": // one record of n bytes, in strings of 255
			var ss []string
			for left := n; left > 0; left -= 255 {
				ss = append(ss, strings.Repeat("a", min(left, 255)))
			}
			rrs = []dns.RR{&dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: ss}}
		case "txts": // n records of one 255-byte string each
			for range n {
				rrs = append(rrs, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: []string{strings.Repeat("a", 255)}})
			}
		case "null":
			rrs = []dns.RR{&dns.NULL{Hdr: hdr(dns.TypeNULL), Data: strings.Repeat("a", n)}}
		}
		resp.Answer = rrs
		if resp.Len() > limit {
			break
		}
		fit = rrs
		if kind == "txts" && n > 64 || n > 65000 {
			break
		}
	}
	resp.Answer = fit
	w.WriteMsg(resp)
}

// carried asks resolver for an answer of kind and returns the bytes of
// data it brought.
func carried(resolver, kind string) (int, error) {
	nonce := make([]byte, 8)
	rand.Read(nonce)
	qtype := dns.TypeTXT
	if kind == "null" {
		qtype = dns.TypeNULL
	}
	q := new(dns.Msg)
	q.SetQuestion(fmt.Sprintf("%s-%s.m.example.", kind, hex.EncodeToString(nonce)), qtype)
	q.SetEdns0(4096, false)
	c := &dns.Client{Timeout: 5 * time.Second, UDPSize: 4096}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, _, err := c.ExchangeContext(ctx, q, resolver)
	if err != nil {
		return 0, err
	}
	if resp.Rcode != dns.RcodeSuccess || resp.Truncated {
		return 0, fmt.Errorf("rcode %s, truncated %v, %d records", dns.RcodeToString[resp.Rcode], resp.Truncated, len(resp.Answer))
	}
	n := 0
	for _, rr := range resp.Answer {
		switch rr := rr.(type) {
		case *dns.TXT:
			for _, s := range rr.Txt {
				n += len(s)
			}
		case *dns.NULL:
			n += len(rr.Data)
		}
	}
	return n, nil
}
