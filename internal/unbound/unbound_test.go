package unbound

import (
	"net"
	"testing"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStub: a query for the zone reaches the stub server through unbound,
// and comes back as the stub answered it; after a restart too.
func TestStub(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(q)
		r.Authoritative = true
		if q.Question[0].Qtype == dns.TypeTXT {
			r.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{"from the stub"}}}
		}
		w.WriteMsg(r)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	defer srv.Shutdown()

	r := Start(t, "t.example.", pc.LocalAddr().String(), Options{})
	ask := func(name string) {
		t.Helper()
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeTXT)
		a, err := dns.Exchange(q, r.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Answer) != 1 || a.Answer[0].(*dns.TXT).Txt[0] != "from the stub" {
			t.Fatalf("%s: %v", name, a)
		}
	}
	ask("a.b.t.example.")
	r.Restart()
	ask("c.t.example.")
}
