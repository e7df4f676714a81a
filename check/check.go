// Package check tests a running proxy from outside, as the WhatsApp app
// would, port by port: TCP connect time, the TLS handshake where there is
// one, and whether a WhatsApp server answers the opening of a chat
// handshake. It says in plain words what a failure most likely means. It
// also asks each open port what an Internet-wide scanner asks, and says which
// ports answer it as a web site and which would give the proxy away (web.go).
package check

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Port is one port to check.
type Port struct {
	Port  int
	TLS   bool // the proxy ends TLS here (chat on 443)
	Media bool // media: the app's TLS goes through to WhatsApp's media servers
}

// DefaultPorts are the app's: chat on 443 with TLS, 80 and 5222; media on 587.
var DefaultPorts = []Port{{Port: 443, TLS: true}, {Port: 80}, {Port: 5222}, {Port: 587, Media: true}}

// ParsePorts parses comma-separated PORT or PORT/tls, for chat, or PORT for
// media.
func ParsePorts(s string, media bool) ([]Port, error) {
	var ps []Port
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		num, opt, _ := strings.Cut(part, "/")
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > 65535 || (opt != "" && (opt != "tls" || media)) {
			if media {
				return nil, fmt.Errorf("%q: want PORT", part)
			}
			return nil, fmt.Errorf("%q: want PORT or PORT/tls", part)
		}
		ps = append(ps, Port{Port: n, TLS: opt == "tls", Media: media})
	}
	return ps, nil
}

// MediaServerName is the TLS server name sent on media ports, as the app
// reaching WhatsApp's media servers sends one of theirs.
const MediaServerName = "mmg.whatsapp.net"

// Result is what one port showed.
type Result struct {
	Port
	Connect, Handshake, Answer time.Duration // zero when the step was not reached
	OK                         bool
	// Verdict says in plain words what worked, or what failed and why.
	Verdict string
	// Web is what a stranger who does not speak WhatsApp gets from the
	// port; zero when the port did not connect.
	Web Web
	// ProxyProtocol is set for a port that waits for a PROXY protocol
	// header before anything else, which the app never sends.
	ProxyProtocol bool

	// mayWantProxy is set when the port connected but closed or stayed
	// silent: what a PROXY protocol listener does to a client without a
	// header, so worth asking again with one.
	mayWantProxy bool
}

// Run checks every port of host, as RunTarget does for an edge.
func Run(ctx context.Context, host string, ports []Port, timeout time.Duration) []Result {
	return RunTarget(ctx, host, ports, timeout, false)
}

// RunTarget checks every port of host, each step bounded by timeout, and
// returns the results in the order of ports. The ports are checked in
// parallel, chat ports first and then media ports: an edge with
// FERRY_EDGE_MEDIA_AFTER_CHAT passes media only for an address that has just
// had a chat connection. One after another, a proxy whose tunnel is down
// took the sum of every port's timeout (20 s and more); in parallel it takes
// two. After the app's check, each open port is also asked what a scanner
// would ask (see Web). standalone says that host is a standalone, which has
// no tunnel: its verdicts then blame only WhatsApp being out of its reach.
func RunTarget(ctx context.Context, host string, ports []Port, timeout time.Duration, standalone bool) []Result {
	behind := "the tunnel is down or the origin cannot reach WhatsApp"
	if standalone {
		behind = "the proxy cannot reach WhatsApp"
	}
	rs := make([]Result, len(ports))
	for _, media := range []bool{false, true} {
		var wg sync.WaitGroup
		for i, p := range ports {
			if p.Media != media {
				continue
			}
			wg.Go(func() {
				r := checkPort(ctx, host, p, timeout, behind, false)
				if r.Connect > 0 {
					r.Web = probeWeb(ctx, host, p, timeout)
				}
				// Closed or silent for the app and for a visitor alike:
				// what a PROXY protocol listener does to whoever sends no
				// header. If it goes on after one, it is one.
				if !r.OK && r.mayWantProxy && r.Web.unanswered && acceptsProxyHeader(ctx, host, p, timeout) {
					r = proxyResult(r, checkPort(ctx, host, p, timeout, behind, true))
					// A scanner outside its trusted ranges gets it as a
					// plain port; inside them it talks only to its load
					// balancer.
					r.Web = Web{Note: proxyNote}
				}
				rs[i] = r
			})
		}
		wg.Wait()
	}
	return rs
}

// proxyResult is the result of a port that waits for a PROXY protocol
// header: not OK whatever came behind the header, since the app sends none,
// with behind's verdict (the check run again after a header) for whoever
// runs the load balancer meant to be in front of it.
func proxyResult(r, behind Result) Result {
	r.ProxyProtocol = true
	r.Handshake, r.Answer = behind.Handshake, behind.Answer
	r.Verdict = "waits for a PROXY protocol header first (a proxy+ listener, for a load balancer in front of the proxy): the app cannot use this port itself, only through the load balancer; after a header: " + behind.Verdict
	return r
}

// acceptsProxyHeader reports whether host's port p, after a PROXY header,
// completes TLS (on a TLS or media port) or answers the scanner's request
// with anything at all (on a plain port). Only a port that closed or stayed
// silent for a visitor without a header is asked: a web site would answer
// the header too, as a bad request.
func acceptsProxyHeader(ctx context.Context, host string, p Port, timeout time.Duration) bool {
	c, err := dial(ctx, host, p, timeout)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, proxyHeader(c)); err != nil {
		return false
	}
	if p.TLS || p.Media {
		_, err := handshake(ctx, c, host, timeout)
		return err == nil
	}
	if _, err := io.WriteString(c, scannerRequest(host)); err != nil {
		return false
	}
	var b [1]byte
	_, err = io.ReadFull(c, b[:])
	return err == nil
}

// proxyHeader is a PROXY protocol v1 header for c, as a load balancer in
// front of the proxy would send it for the client c is: the checker's own
// address, nobody else's.
func proxyHeader(c net.Conn) string {
	src, _ := c.LocalAddr().(*net.TCPAddr)
	dst, _ := c.RemoteAddr().(*net.TCPAddr)
	if src == nil || dst == nil {
		return "PROXY UNKNOWN\r\n"
	}
	family := "TCP4"
	if src.IP.To4() == nil {
		family = "TCP6"
	}
	return fmt.Sprintf("PROXY %s %s %s %d %d\r\n", family, src.IP, dst.IP, src.Port, dst.Port)
}

func checkPort(ctx context.Context, host string, p Port, timeout time.Duration, behind string, proxyProtocol bool) Result {
	r := Result{Port: p}
	start := time.Now()
	c, err := dial(ctx, host, p, timeout)
	if err != nil {
		r.Verdict = connectVerdict(err)
		return r
	}
	defer c.Close()
	r.Connect = max(time.Since(start), time.Nanosecond)
	if proxyProtocol {
		c.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := io.WriteString(c, proxyHeader(c)); err != nil {
			r.Verdict = "the connection broke while sending a PROXY header: " + short(err)
			return r
		}
	}

	if p.TLS || p.Media {
		name := host
		if p.Media {
			name = MediaServerName
		}
		start = time.Now()
		tc, err := handshake(ctx, c, name, timeout)
		if err != nil {
			r.mayWantProxy = true
			if p.Media {
				r.Verdict = "connects, but the TLS handshake with WhatsApp's media server fails: " + behind + ", or something blocks TLS (" + short(err) + ")"
			} else {
				r.Verdict = "connects, but TLS fails: this port is not a TLS listener of the proxy, or something in between interferes (" + short(err) + ")"
			}
			return r
		}
		r.Handshake = time.Since(start)
		if p.Media {
			r.OK, r.Verdict = mediaVerdict(tc)
			return r
		}
		c = tc
	}

	start = time.Now()
	c.SetDeadline(time.Now().Add(timeout))
	if err := Hello(c); err != nil {
		r.Verdict = "the connection broke while sending: " + short(err)
		r.mayWantProxy = true
		return r
	}
	if err := AwaitServerHello(c); err != nil {
		var ne net.Error
		what := "TCP connects"
		if p.TLS {
			what = "TLS works"
		}
		switch {
		case errors.Is(err, ErrWebAnswer):
			r.Verdict = "a web server answers the opening, not WhatsApp: the proxy took the app for a visitor, or another web server has this port"
		case errors.Is(err, ErrNotWhatsApp):
			r.Verdict = "something answers, but not like WhatsApp: another program on this port?"
		case errors.As(err, &ne) && ne.Timeout():
			r.Verdict = what + " but nothing answers behind it within " + timeout.String() + ": " + behind
			r.mayWantProxy = true
		default:
			r.Verdict = what + " but the proxy closed the connection unanswered: " + behind + " (" + short(err) + ")"
			r.mayWantProxy = true
		}
		return r
	}
	r.Answer = time.Since(start)
	r.OK = true
	r.Verdict = "ok: WhatsApp answers"
	return r
}

// dial connects to host's port p within timeout.
func dial(ctx context.Context, host string, p Port, timeout time.Duration) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return (&net.Dialer{}).DialContext(dctx, "tcp", net.JoinHostPort(host, strconv.Itoa(p.Port)))
}

// handshake runs a TLS client handshake on c within timeout. name is sent
// as the server name unless it is an IP address (RFC 6066, as the app
// does). The certificate is not verified: on chat ports it is the proxy's
// own, which the app accepts whatever it is.
func handshake(ctx context.Context, c net.Conn, name string, timeout time.Duration) (*tls.Conn, error) {
	tc := tls.Client(c, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return tc, tc.HandshakeContext(hctx)
}

// mediaVerdict tells WhatsApp's media server from the proxy answering
// itself: the phone checks that the certificate is for the media name it
// asked for, and a proxy that does not pass media through (an edge that
// serves its web site instead) shows its own.
func mediaVerdict(tc *tls.Conn) (bool, string) {
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) > 0 && certs[0].VerifyHostname(MediaServerName) == nil {
		return true, "ok: WhatsApp's media server answers"
	}
	return false, "TLS completes, but with a certificate for " + certName(certs) + ", not " + MediaServerName + ": the proxy answers itself instead of passing media through (with FERRY_EDGE_MEDIA_AFTER_CHAT only addresses that had a chat connection in the last 10 minutes pass, so chat must work first), or something in between intercepts TLS"
}

// certName is the name a certificate chain's leaf is for.
func certName(certs []*x509.Certificate) string {
	switch {
	case len(certs) == 0:
		return "nothing"
	case len(certs[0].DNSNames) > 0:
		return certs[0].DNSNames[0]
	case certs[0].Subject.CommonName != "":
		return certs[0].Subject.CommonName
	}
	return "no name"
}

func connectVerdict(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused: a firewall, or nothing listening on this port"
	case errors.As(err, &ne) && ne.Timeout():
		return "no answer to the connection: packets are dropped, by a firewall or by a censor blocking this address"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "unreachable: no route to this address from here"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "the host name does not resolve: " + dnsErr.Err
	}
	return "cannot connect: " + short(err)
}

// short is err's last part, without the addresses net errors repeat.
func short(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// The opening of a WhatsApp chat connection, as public client libraries
// (whatsmeow, Baileys) describe it: a 4-byte prologue, then frames of a
// 3-byte big-endian length and a payload. The first payload is a protobuf
// HandshakeMessage whose clientHello (field 2) holds the client's 32-byte
// X25519 ephemeral key (field 1); the server answers with a frame whose
// HandshakeMessage has serverHello (field 3), tag 0x1a.
var (
	Prologue       = []byte{'W', 'A', 6, 3}
	helloPrefix    = []byte{0x12, 0x22, 0x0a, 0x20}
	serverHelloTag = byte(0x1a)
)

// ErrNotWhatsApp is returned for an answer that is not a WhatsApp server's.
var ErrNotWhatsApp = errors.New("the answer is not a WhatsApp server hello")

// ErrWebAnswer is returned for an HTTP answer; it is an ErrNotWhatsApp.
var ErrWebAnswer = fmt.Errorf("%w: it is a web server's", ErrNotWhatsApp)

// Hello sends the prologue and a client hello with a fresh random key.
func Hello(w io.Writer) error {
	payload := append(append([]byte{}, helloPrefix...), make([]byte, 32)...)
	rand.Read(payload[len(helloPrefix):])
	msg := append(append([]byte{}, Prologue...), byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload)))
	_, err := w.Write(append(msg, payload...))
	return err
}

// AwaitServerHello reads the server's first frame header and payload byte.
func AwaitServerHello(r io.Reader) error {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return err
	}
	if string(b[:]) == "HTTP" {
		return ErrWebAnswer
	}
	if n := int(b[0])<<16 | int(b[1])<<8 | int(b[2]); n == 0 || b[3] != serverHelloTag {
		return ErrNotWhatsApp
	}
	return nil
}

// ReadHello reads a client's prologue and hello, as a WhatsApp server (or a
// test's stand-in for one) does.
func ReadHello(r io.Reader) error {
	b := make([]byte, len(Prologue)+3+len(helloPrefix)+32)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	if string(b[:4]) != string(Prologue) || b[4] != 0 || b[5] != 0 || int(b[6]) != len(helloPrefix)+32 || string(b[7:11]) != string(helloPrefix) {
		return errors.New("not a WhatsApp client hello")
	}
	return nil
}

// ServerHello is a frame as a WhatsApp server answers a hello with: only its
// first payload byte matters here.
func ServerHello() []byte {
	payload := append([]byte{serverHelloTag, 0x20}, make([]byte, 32)...)
	return append([]byte{0, 0, byte(len(payload))}, payload...)
}

// Works reports whether chat works on at least one port.
func Works(rs []Result) bool {
	for _, r := range rs {
		if r.OK && !r.Media {
			return true
		}
	}
	return false
}

// Write prints rs as a table, then a summary: whether chat works, and what
// the ports show to strangers.
func Write(w io.Writer, host string, rs []Result) {
	fmt.Fprintf(w, "%-6s %-11s %9s %9s %9s  %-11s  %s\n", "PORT", "KIND", "CONNECT", "TLS", "ANSWER", "WEB", "RESULT")
	for _, r := range rs {
		kind := "chat"
		switch {
		case r.Media:
			kind = "media"
		case r.TLS:
			kind = "chat (TLS)"
		}
		fmt.Fprintf(w, "%-6d %-11s %9s %9s %9s  %-11s  %s\n", r.Port.Port, kind, ms(r.Connect), ms(r.Handshake), ms(r.Answer), r.Web.column(), r.Verdict)
	}
	fmt.Fprintln(w)
	switch {
	case Works(rs):
		fmt.Fprintf(w, "Chat works through %s: WhatsApp answers behind the proxy.\n", host)
	default:
		fmt.Fprintf(w, "Chat does not work through %s: see each port above. The app then shows \"connecting…\".\n", host)
	}
	writeWeb(w, rs)
}

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}
