package dnstun

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestServeTCP: queries over TCP get the answers they get over UDP, and
// past MaxTCPConns the oldest connection is closed for a new one.
func TestServeTCP(t *testing.T) {
	s := &Server{Zone: mustZone(t, "t.example.com"), Key: testKey, Hold: -1}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.ServeTCP(ln) }()
	defer func() {
		ln.Close()
		<-served
	}()
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	q := question("t.example.com.", dns.TypeSOA)
	if a, _, err := c.Exchange(q, ln.Addr().String()); err != nil || len(a.Answer) != 1 || a.Answer[0].Header().Rrtype != dns.TypeSOA {
		t.Fatalf("SOA: %v, %v", a, err)
	}
	tq := tunnelQuery(t, s.Zone, testKey, Upstream{Session: testSession(), Cap: 1232, Data: []byte("up")})
	if a, _, err := c.Exchange(tq, ln.Addr().String()); err != nil || len(a.Answer) != 1 {
		t.Fatalf("a tunnel query: %v, %v", a, err)
	}
	first, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	var rest []net.Conn
	for range MaxTCPConns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rest = append(rest, c)
	}
	first.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := first.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the oldest connection past the cap: %v, want it closed", err)
	}
}
