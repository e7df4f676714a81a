package dnstun

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testKey = Key("a secret of thirty-two bytes or more....")

func mustZone(t testing.TB, s string) Zone {
	t.Helper()
	z, err := ParseZone(s)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// randomCase flips the case of letters at random, as a resolver's 0x20
// encoding does.
func randomCase(r *rand.Rand, s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' && r.IntN(2) == 0 {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func TestNameRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, zs := range []string{"t.example.com", "T.Example.COM.", "a.b", strings.Repeat("z", 63) + "." + strings.Repeat("y", 63) + ".example"} {
		z := mustZone(t, zs)
		if z.MaxData() < 1 {
			t.Fatalf("%s: MaxData %d", z, z.MaxData())
		}
		for _, n := range []int{0, 1, 2, 7, z.MaxData() / 2, z.MaxData()} {
			u := Upstream{Seq: r.Uint32(), Cap: 1216, Data: make([]byte, n)}
			for i := range u.Session {
				u.Session[i] = byte(r.Uint32())
			}
			for i := range u.Data {
				u.Data[i] = byte(r.Uint32())
			}
			name, err := z.EncodeName(testKey, u)
			if err != nil {
				t.Fatal(err)
			}
			if len(strings.TrimSuffix(name, ".")) > MaxName {
				t.Errorf("%s: %d bytes: name of %d characters", z, n, len(name))
			}
			for l := range strings.SplitSeq(strings.TrimSuffix(name, "."), ".") {
				if len(l) > MaxLabel || l == "" {
					t.Errorf("label %q", l)
				}
			}
			if _, ok := dns.IsDomainName(name); !ok {
				t.Errorf("%q is not a domain name", name)
			}
			got, err := z.DecodeName(testKey, randomCase(r, name))
			if err != nil {
				t.Fatalf("%s: %d bytes: %v", z, n, err)
			}
			if got.Session != u.Session || got.Seq != u.Seq || got.Cap != u.Cap || !bytes.Equal(got.Data, u.Data) {
				t.Errorf("%s: %d bytes: got %+v, want %+v", z, n, got, u)
			}
		}
		if _, err := z.EncodeName(testKey, Upstream{Data: make([]byte, z.MaxData()+1)}); err == nil {
			t.Errorf("%s: a datagram past MaxData encoded", z)
		}
	}
}

func TestNameRefused(t *testing.T) {
	z := mustZone(t, "t.example.com")
	name, _ := z.EncodeName(testKey, Upstream{Seq: 7, Data: []byte("hello")})
	if _, err := z.DecodeName(Key("another secret"), name); !errors.Is(err, errMAC) {
		t.Errorf("another key: %v", err)
	}
	// Every single-character change is refused.
	for i := 0; i < len(name)-len(z); i++ {
		for _, c := range []byte("a7.") {
			if name[i] == c || name[i]|0x20 == c {
				continue
			}
			b := []byte(name)
			b[i] = c
			if _, err := z.DecodeName(testKey, string(b)); err == nil {
				t.Errorf("%q decoded", b)
			}
		}
	}
	for _, bad := range []string{"", ".", "t.example.com.", "x.t.example.com.", "aaaa.example.com.", name[:len(name)-len(z)] + "example.org."} {
		if _, err := z.DecodeName(testKey, bad); !errors.Is(err, errNotTunnel) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestParseZone(t *testing.T) {
	for _, bad := range []string{"", ".", "a..b", "-a.b", "a_b.c", strings.Repeat("a", 64) + ".b", strings.Repeat("abcd.", 41)} {
		if _, err := ParseZone(bad); err == nil {
			t.Errorf("ParseZone(%q) passed", bad)
		}
	}
}

func TestAnswerSizes(t *testing.T) {
	z := mustZone(t, "t.example.com")
	for _, lim := range []int{MinAnswer, 1232, MaxAnswer} {
		q := new(dns.Msg)
		q.SetQuestion(z.longestName(), dns.TypeTXT)
		q.SetEdns0(MaxAnswer, false)
		a, err := newAnswer(q, lim)
		if err != nil {
			t.Fatal(err)
		}
		mtu := z.MaxDownstream(lim)
		if mtu < 100 {
			t.Fatalf("limit %d: MaxDownstream %d", lim, mtu)
		}
		var want [][]byte
		for i := 0; ; i++ {
			d := bytes.Repeat([]byte{byte(i)}, mtu/3+i)
			if !a.add(d) {
				break
			}
			want = append(want, d)
		}
		b, err := a.pack()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > lim || len(b) < lim-mtu/3-20 {
			t.Errorf("limit %d: an answer of %d bytes", lim, len(b))
		}
		got, err := DecodeAnswer(b, strings.ToUpper(q.Question[0].Name))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("limit %d: %d datagrams, want %d", lim, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Errorf("limit %d: datagram %d differs", lim, i)
			}
		}
		t.Logf("limit %d: %d datagram bytes at most, %d in %d datagrams", lim, mtu, len(b), len(got))
		// One of MaxDownstream fits an answer to the longest name.
		a, _ = newAnswer(q, lim)
		if !a.add(make([]byte, mtu)) {
			t.Errorf("limit %d: a datagram of MaxDownstream does not fit", lim)
		}
		if a2, _ := newAnswer(q, lim); a2.add(make([]byte, mtu+1)) {
			t.Errorf("limit %d: a datagram past MaxDownstream fits", lim)
		}
	}
}

func TestAnswerEmptyAndTruncated(t *testing.T) {
	z := mustZone(t, "t.example.com")
	q := new(dns.Msg)
	q.SetQuestion("abc."+string(z), dns.TypeTXT)
	a, _ := newAnswer(q, MinAnswer)
	b, _ := a.pack()
	if ds, err := DecodeAnswer(b, "abc."+string(z)); err != nil || len(ds) != 0 {
		t.Errorf("empty: %v %v", ds, err)
	}
	m := new(dns.Msg)
	m.Unpack(b)
	m.Truncated = true
	m.Answer = nil
	b, _ = m.Pack()
	if _, err := DecodeAnswer(b, "abc."+string(z)); !errors.Is(err, errTruncated) {
		t.Errorf("truncated: %v", err)
	}
}

func FuzzDecodeName(f *testing.F) {
	z := Zone("t.example.com.")
	for _, n := range []int{0, 5, z.MaxData()} {
		name, _ := z.EncodeName(testKey, Upstream{Seq: uint32(n), Data: make([]byte, n)})
		f.Add(name)
	}
	f.Add("x.t.example.com.")
	f.Fuzz(func(t *testing.T, name string) {
		u, err := z.DecodeName(testKey, name)
		if err != nil {
			return
		}
		// What decodes encodes back to the same name, but for case.
		back, err := z.EncodeName(testKey, u)
		if err != nil || !strings.EqualFold(back, name) {
			t.Fatalf("%q decoded to %+v, encodes back to %q (%v)", name, u, back, err)
		}
	})
}

func FuzzDecodeAnswer(f *testing.F) {
	q := new(dns.Msg)
	q.SetQuestion("abc.t.example.com.", dns.TypeTXT)
	q.SetEdns0(1232, false)
	a, _ := newAnswer(q, 1232)
	a.add([]byte("hello"))
	a.add(bytes.Repeat([]byte{0x5c}, 300))
	b, _ := a.pack()
	f.Add(b)
	f.Add([]byte{0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := DecodeAnswer(b, "abc.t.example.com.")
		if err != nil {
			return
		}
		total := 0
		for _, d := range ds {
			total += len(d)
		}
		if total > len(b) {
			t.Fatalf("%d bytes of datagrams from an answer of %d", total, len(b))
		}
	})
}

func FuzzParseTXT(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{4, 0, 2, 'h', 'i'})
	f.Fuzz(func(t *testing.T, rd []byte) {
		ds, err := parseTXT(rd)
		if err != nil {
			return
		}
		for _, d := range ds {
			if len(d) > len(rd) {
				t.Fatal("a datagram longer than its record")
			}
		}
	})
}
