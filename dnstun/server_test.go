package dnstun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/miekg/dns"
)

func newTestServer(t *testing.T) *Server {
	s := &Server{Zone: mustZone(t, "t.example.com"), Key: testKey}
	t.Cleanup(func() { s.Close() })
	return s
}

// ask sends q to s and returns the answer given at once (nil if none).
func ask(t *testing.T, s *Server, q *dns.Msg) *dns.Msg {
	t.Helper()
	b, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	s.Handle(b, func(r []byte) { got = r })
	if got == nil {
		return nil
	}
	m := new(dns.Msg)
	if err := m.Unpack(got); err != nil {
		t.Fatal(err)
	}
	return m
}

func question(name string, qt uint16) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, qt)
	q.RecursionDesired = false
	return q
}

func testSession() SessionID {
	var id SessionID
	id[0] = 1
	binary.BigEndian.PutUint32(id[4:], uint32(time.Now().Unix()))
	return id
}

func tunnelQuery(t *testing.T, z Zone, key []byte, u Upstream) *dns.Msg {
	name, err := z.EncodeName(key, u)
	if err != nil {
		t.Fatal(err)
	}
	q := question(name, dns.TypeTXT)
	q.SetEdns0(1232, false)
	return q
}

func TestServerOrdinary(t *testing.T) {
	s := newTestServer(t)
	s.Addr = mustAddr("192.0.2.53")
	for _, tc := range []struct {
		name  string
		qt    uint16
		rcode int
		ans   uint16 // the answer's type, or 0 for none
		soa   bool   // the SOA in the authority section
	}{
		{"t.example.com.", dns.TypeSOA, dns.RcodeSuccess, dns.TypeSOA, false},
		{"T.Example.Com.", dns.TypeNS, dns.RcodeSuccess, dns.TypeNS, false},
		{"t.example.com.", dns.TypeA, dns.RcodeSuccess, dns.TypeA, false},
		{"ns.t.example.com.", dns.TypeA, dns.RcodeSuccess, dns.TypeA, false},
		{"ns.t.example.com.", dns.TypeAAAA, dns.RcodeSuccess, 0, true},
		{"t.example.com.", dns.TypeMX, dns.RcodeSuccess, 0, true},
		{"www.t.example.com.", dns.TypeA, dns.RcodeSuccess, 0, true},
		{"www.t.example.com.", dns.TypeTXT, dns.RcodeSuccess, 0, true},
		{"example.com.", dns.TypeA, dns.RcodeRefused, 0, false},
		{"www.google.com.", dns.TypeA, dns.RcodeRefused, 0, false},
	} {
		r := ask(t, s, question(tc.name, tc.qt))
		if r == nil || r.Rcode != tc.rcode {
			t.Errorf("%s %s: %v", tc.name, dns.TypeToString[tc.qt], r)
			continue
		}
		if (len(r.Answer) > 0) != (tc.ans != 0) || tc.ans != 0 && r.Answer[0].Header().Rrtype != tc.ans {
			t.Errorf("%s %s: answer %v", tc.name, dns.TypeToString[tc.qt], r.Answer)
		}
		if hasSOA := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA; hasSOA != tc.soa {
			t.Errorf("%s %s: authority %v", tc.name, dns.TypeToString[tc.qt], r.Ns)
		}
		if tc.rcode == dns.RcodeSuccess && !r.Authoritative {
			t.Errorf("%s: not authoritative", tc.name)
		}
	}
	// Not DNS at all: no answer; a header and garbage: FORMERR.
	var got []byte
	s.Handle([]byte("GET / HTTP/1.1\r\n\r\n"), func(b []byte) { got = b })
	s.Handle([]byte{1, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff}, func(b []byte) { got = b })
	if m := new(dns.Msg); got == nil || m.Unpack(got) != nil || m.Rcode != dns.RcodeFormatError || m.Id != 0x0102 {
		t.Errorf("garbage: %v", got)
	}
}

// TestServerForged: a query with another key, a replayed one, one of a
// session started long ago, and one past the session cap each get what an
// unknown name gets, and never reach ReadFrom.
func TestServerForged(t *testing.T) {
	s := newTestServer(t)
	s.MaxSessions = 1
	s.Hold = -1
	z := s.Zone
	unknown := ask(t, s, question("www.t.example.com.", dns.TypeTXT))
	same := func(what string, r *dns.Msg) {
		t.Helper()
		if r == nil || r.Rcode != unknown.Rcode || len(r.Answer) != 0 || len(r.Ns) != 1 || r.Ns[0].String() != unknown.Ns[0].String() {
			t.Errorf("%s: %v, want as for an unknown name: %v", what, r, unknown)
		}
	}
	id := testSession()
	same("another key", ask(t, s, tunnelQuery(t, z, Key("another"), Upstream{Session: id, Data: []byte("x")})))
	old := id
	binary.BigEndian.PutUint32(old[4:], uint32(time.Now().Add(-time.Hour).Unix()))
	same("an old session", ask(t, s, tunnelQuery(t, z, testKey, Upstream{Session: old, Data: []byte("x")})))
	q := tunnelQuery(t, z, testKey, Upstream{Session: id, Seq: 5, Data: []byte("first")})
	if r := ask(t, s, q); r == nil || len(r.Answer) != 1 {
		t.Fatalf("a tunnel query: %v", r)
	}
	same("a replay", ask(t, s, q))
	other := id
	other[0] = 2
	same("past the cap", ask(t, s, tunnelQuery(t, z, testKey, Upstream{Session: other, Data: []byte("x")})))
	// Only the one datagram came through.
	buf := make([]byte, 100)
	n, from, _ := s.ReadFrom(buf)
	if string(buf[:n]) != "first" || from != SessionAddr(id) {
		t.Errorf("ReadFrom: %q from %v", buf[:n], from)
	}
	select {
	case d := <-s.in:
		t.Errorf("another datagram: %q", d.b)
	default:
	}
}

func TestServerReplayWindow(t *testing.T) {
	var ss serverSession
	ss.highest = 99
	for _, tc := range []struct {
		seq uint32
		ok  bool
	}{{100, true}, {100, false}, {98, true}, {98, false}, {400, true}, {100, false}, {400 - replayWindow + 1, true}, {400 - replayWindow, false}, {390, true}, {390, false}, {401, true}, {400, false}} {
		if got := ss.accept(tc.seq); got != tc.ok {
			t.Errorf("seq %d: %v, want %v", tc.seq, got, tc.ok)
		}
	}
}

// TestServerHold: a query with nothing queued is held until a datagram
// comes for its session, or Hold passes.
func TestServerHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &Server{Zone: mustZone(t, "t.example.com"), Key: testKey}
		defer s.Close()
		id := testSession()
		answers := make(chan []byte, 4)
		send := func(seq uint32) {
			b, _ := tunnelQuery(t, s.Zone, testKey, Upstream{Session: id, Seq: seq}).Pack()
			s.Handle(b, func(r []byte) { answers <- r })
		}
		send(0)
		synctest.Wait()
		if len(answers) != 0 {
			t.Fatal("answered before the hold ended")
		}
		start := time.Now()
		r := <-answers
		if d := time.Since(start); d != DefaultHold {
			t.Errorf("held %v", d)
		}
		q := tunnelQuery(t, s.Zone, testKey, Upstream{Session: id, Seq: 0})
		if ds, err := DecodeAnswer(r, q.Question[0].Name); err != nil || len(ds) != 0 {
			t.Errorf("after the hold: %v %v", ds, err)
		}
		send(1)
		synctest.Wait()
		time.Sleep(DefaultHold / 2)
		s.WriteTo([]byte("down"), SessionAddr(id))
		synctest.Wait()
		select {
		case r := <-answers:
			ds, err := DecodeAnswer(r, tunnelQuery(t, s.Zone, testKey, Upstream{Session: id, Seq: 1}).Question[0].Name)
			if err != nil || len(ds) != 1 || !bytes.Equal(ds[0], []byte("down")) {
				t.Errorf("with data: %q %v", ds, err)
			}
		default:
			t.Error("a datagram did not release the held query")
		}
		// Queued: answered at once.
		s.WriteTo([]byte("more"), SessionAddr(id))
		send(2)
		if len(answers) != 1 {
			t.Error("a query with data queued was held")
		}
	})
}

func TestServerQueueCap(t *testing.T) {
	s := newTestServer(t)
	s.MaxQueued = 1000
	s.Hold = -1
	id := testSession()
	ask(t, s, tunnelQuery(t, s.Zone, testKey, Upstream{Session: id, Cap: 1232}))
	for range 10 {
		s.WriteTo(make([]byte, 300), SessionAddr(id))
	}
	if s.Dropped.Load() != 7 {
		t.Errorf("dropped %d, want 7", s.Dropped.Load())
	}
	if n, _ := s.WriteTo(make([]byte, s.MTU(SessionAddr(id))+1), SessionAddr(id)); n == 0 || s.Dropped.Load() != 8 {
		t.Error("a datagram past the MTU was not dropped")
	}
}

func FuzzHandle(f *testing.F) {
	z := Zone("t.example.com.")
	id := testSession()
	for _, q := range []*dns.Msg{question("t.example.com.", dns.TypeSOA), question("x.t.example.com.", dns.TypeTXT)} {
		b, _ := q.Pack()
		f.Add(b)
	}
	name, _ := z.EncodeName(testKey, Upstream{Session: id, Data: []byte("hi")})
	q := question(name, dns.TypeTXT)
	q.SetEdns0(4096, false)
	b, _ := q.Pack()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &Server{Zone: z, Key: testKey, Hold: -1}
		defer s.Close()
		s.Handle(b, func(r []byte) {
			q := new(dns.Msg)
			lim := MinAnswer
			if q.Unpack(b) == nil {
				lim = limit(q)
			}
			if len(r) > lim {
				t.Fatalf("an answer of %d bytes for a limit of %d", len(r), lim)
			}
			if new(dns.Msg).Unpack(r) != nil {
				t.Fatalf("an answer that does not parse: %x", r)
			}
		})
	})
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestServerRetried: a resolver that asks again for a query held (it gave
// up waiting) gets the held query's answer; the first asker gets none, as
// the resolver would ignore it.
func TestServerRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &Server{Zone: mustZone(t, "t.example.com"), Key: testKey}
		defer s.Close()
		id := testSession()
		first, second := make(chan []byte, 1), make(chan []byte, 1)
		q := tunnelQuery(t, s.Zone, testKey, Upstream{Session: id, Seq: 3})
		b, _ := q.Pack()
		s.Handle(b, func(r []byte) { first <- r })
		q.Id++
		b, _ = q.Pack()
		s.Handle(b, func(r []byte) { second <- r })
		s.WriteTo([]byte("down"), SessionAddr(id))
		synctest.Wait()
		if len(first) != 0 {
			t.Error("the query given up was answered")
		}
		select {
		case r := <-second:
			m := new(dns.Msg)
			m.Unpack(r)
			ds, err := DecodeAnswer(r, q.Question[0].Name)
			if m.Id != q.Id || err != nil || len(ds) != 1 || string(ds[0]) != "down" {
				t.Errorf("the retry's answer: id %d, %q, %v", m.Id, ds, err)
			}
		default:
			t.Error("the retry was not answered")
		}
		// Once answered, the same query again gets an ordinary answer.
		var got []byte
		s.Handle(b, func(r []byte) { got = r })
		if ds, err := DecodeAnswer(got, q.Question[0].Name); !errors.Is(err, errNoTXT) {
			t.Errorf("a replay after the answer: %q, %v", ds, err)
		}
	})
}
