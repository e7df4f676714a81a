// Package scan sends what Internet-wide scanners send to a server, and
// reads what comes back as a web client sees it, so that tests can compare
// an edge's answers with an ordinary web server's (Go's net/http, nginx).
package scan

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// Probe is one thing a scanner sends.
type Probe struct {
	Name string
	Send []byte
	// Method is the request's, for reading a HEAD's answer.
	Method string
	// CloseWrite half-closes after Send for a server that waits for a line
	// end (net/http): at the end of the bytes it answers what it has.
	CloseWrite bool
	// Status is what an ordinary web server answers, empty when it is not
	// one status (keep-alive gives two).
	Status int
}

// Probes are the probes of a scanner's first visit; sni is used for the
// ClientHello sent to a plain port.
func Probes(t testing.TB, sni string) []Probe {
	return []Probe{
		{"GET", []byte("GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 zgrab/0.x\r\nAccept: */*\r\nConnection: close\r\n\r\n"), "GET", false, 200},
		{"HEAD", []byte("HEAD / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"), "HEAD", false, 200},
		{"missing page", []byte("GET /admin/login.php HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"), "GET", false, 404},
		{"keep-alive", []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), "GET", false, 0},
		{"malformed request line", []byte("GET\r\n\r\n"), "GET", false, 400},
		{"HTTP/1.0 without Host", []byte("GET / HTTP/1.0\r\n\r\n"), "GET", false, 200},
		{"random bytes", []byte{0x8f, 0x02, 0xff, 0x00, 0x13, 0x37, 0xc4, 0x81, 0x5a, 0x00, 0x01}, "GET", true, 400},
		{"TLS ClientHello", ClientHello(t, sni), "GET", true, 400},
	}
}

// Target is how to reach a port: through a PROXY header first, inside TLS
// with a server name.
type Target struct {
	Addr  string
	Proxy bool
	TLS   bool
	SNI   string
}

// Exchange sends b to t, half-closes if asked, and returns all that comes
// back until the server closes, or the bound of 10 s.
func Exchange(tb testing.TB, t Target, b []byte, closeWrite bool) []byte {
	tb.Helper()
	raw, err := net.Dial("tcp", t.Addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	if t.Proxy {
		io.WriteString(raw, "PROXY TCP4 198.51.100.7 127.0.0.1 40000 443\r\n")
	}
	var c net.Conn = raw
	if t.TLS {
		tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, ServerName: t.SNI, NextProtos: []string{"http/1.1"}})
		if err := tc.Handshake(); err != nil {
			tb.Fatalf("TLS to %s: %v", t.Addr, err)
		}
		c = tc
	}
	c.Write(b)
	if closeWrite {
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}
	out, _ := io.ReadAll(c)
	return out
}

// Answer is what a web client sees of a response: its status, the names
// of its headers (without Date, which differs by the second) and its body.
type Answer struct {
	Status  int
	Headers string
	Body    string
}

// Answers parses the responses in raw, to a request of method; bytes that
// are not HTTP end the list as an Answer of status 0 holding them.
func Answers(raw []byte, method string) []Answer {
	var out []Answer
	br := bufio.NewReader(bytes.NewReader(raw))
	for {
		if _, err := br.Peek(1); err != nil {
			return out
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			rest, _ := io.ReadAll(br)
			return append(out, Answer{Body: string(rest)})
		}
		body, _ := io.ReadAll(resp.Body)
		var names []string
		for k := range resp.Header {
			if k != "Date" {
				names = append(names, k)
			}
		}
		slices.Sort(names)
		out = append(out, Answer{Status: resp.StatusCode, Headers: strings.Join(names, ","), Body: string(body)})
	}
}

// ClientHello returns the bytes of a TLS ClientHello for sni, as a client
// of crypto/tls sends them.
func ClientHello(t testing.TB, sni string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, &tls.Config{ServerName: sni, InsecureSkipVerify: true}).Handshake()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}
