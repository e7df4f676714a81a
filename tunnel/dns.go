package tunnel

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ferry/dnstun"
)

// The dns transport is for shutdowns, when nothing but DNS leaves the
// country (issue 17): datagrams in queries to recursive resolvers and in
// the answers of the origin, ZONE's authoritative server (package dnstun);
// over them kcp-go's reliable stream, over that TLS 1.3 with the origin's
// certificate, and over that the hellos and yamux, as over a WebSocket:
//
//	edge                                                   origin
//	 |== dnstun: names under ZONE up, TXT answers down (via resolvers) ==|
//	 |== kcp: retransmissions, order, windows ===========================|
//	 |-- TLS 1.3 ClientHello, SNI ZONE ---------------------------------->|  the origin's certificate,
//	 |<-- ServerHello ... Finished ---------------------------------------|  self-signed or not
//	 |-- hello, bound to the TLS exporter -------------------------------->|  hello.go; a wrong secret
//	 |<-- hello ----------------------------------------------------------|  gets silence
//	 |== yamux session, control stream first (yamux.go, control.go) =====|
//
// The resolver is the censor's: it sees the session IDs and sequence
// numbers of queries, and kcp's and TLS's framing, never what TLS
// carries. A query it forges or replays is refused by dnstun's MAC and
// sequence checks before it reaches kcp, and gets the answer of an unknown
// name.

// DNS's links are slow (answers come at the resolvers' pace, polled when
// idle): pings are spaced wider, and a session survives a resolver's
// restart of a few seconds, unless End sets its own.
const (
	dnsKeepAlive   = 5 * time.Second
	dnsPingTimeout = 20 * time.Second
)

// dnsEnd is end with the dns transport's ping defaults.
func dnsEnd(end End) End {
	if end.KeepAlive == 0 {
		end.KeepAlive = dnsKeepAlive
	}
	if end.PingTimeout == 0 {
		end.PingTimeout = dnsPingTimeout
	}
	return end
}

// DNSStreams is the reliable stream over dnstun's datagrams: package
// ferry/dnstun/reliable (kcp-go), which this package does not import, so
// that only a binary with the dns transport runs kcp-go's goroutines. A
// binary sets it once, before its first Listen or NewDialer of a dns URL
// (cmd/ferry does; tests set it in TestMain).
type DNSStreams struct {
	Dial   func(pc net.PacketConn, raddr net.Addr, mtu, window int) (net.Conn, error)
	Listen func(pc net.PacketConn, mtu func(net.Addr) int) (StreamListener, error)
}

// StreamListener accepts the reliable streams of DNSStreams.Listen.
type StreamListener interface {
	Accept() (net.Conn, error)
	Close() error
}

var dnsStreams DNSStreams

// SetDNSStreams wires the dns transport's reliable stream in.
func SetDNSStreams(s DNSStreams) { dnsStreams = s }

// DNSStreamsOf makes DNSStreams of a package's Dial and Listen:
// DNSStreamsOf(reliable.Dial, reliable.Listen).
func DNSStreamsOf[L StreamListener](dial func(net.PacketConn, net.Addr, int, int) (net.Conn, error), listen func(net.PacketConn, func(net.Addr) int) (L, error)) DNSStreams {
	return DNSStreams{Dial: dial, Listen: func(pc net.PacketConn, mtu func(net.Addr) int) (StreamListener, error) {
		return listen(pc, mtu)
	}}
}

var errNoDNSStreams = errors.New("this binary has no dns transport (tunnel.SetDNSStreams)")

// DNSDialer dials an origin through DNS resolvers.
type DNSDialer struct {
	zone      dnstun.Zone
	resolvers []netip.AddrPort
	end       End
	key, dkey []byte
	// Rate is the queries a second to each resolver, the URL's rate= (0:
	// dnstun.DefaultRate); tests set it too.
	Rate float64
	// Cap is the answer size asked for (0: dnstun.DefaultCap), for
	// measurements.
	Cap int
	cap atomic.Int64 // the answer size the last session ended with
	// Client is the latest session's dnstun client, for tests' counters.
	Client atomic.Pointer[dnstun.Client]
}

// newDNSDialer returns a dialer of u, a dns:// URL. Without resolvers in u,
// it uses the system's (resolvConf).
func newDNSDialer(u URL, end End) (*DNSDialer, error) {
	if dnsStreams.Dial == nil {
		return nil, fmt.Errorf("tunnel URL %s: %w", u, errNoDNSStreams)
	}
	z, err := dnstun.ParseZone(u.Host)
	if err != nil {
		return nil, fmt.Errorf("tunnel URL %s: %w", u, err)
	}
	var rs []netip.AddrPort
	if u.Resolvers != "" {
		for r := range strings.SplitSeq(u.Resolvers, ",") {
			ap, err := netip.ParseAddrPort(r)
			if err != nil {
				return nil, fmt.Errorf("tunnel URL %s: resolver %q is not IP:PORT", u, r)
			}
			rs = append(rs, ap)
		}
	} else {
		b, err := os.ReadFile(resolvConf)
		if err != nil {
			return nil, fmt.Errorf("tunnel URL %s has no resolver=, and the system's are unknown: %w", u, err)
		}
		if rs = systemResolvers(b); len(rs) == 0 {
			return nil, fmt.Errorf("tunnel URL %s has no resolver=, and %s names none", u, resolvConf)
		}
	}
	return &DNSDialer{zone: z, resolvers: rs, Rate: float64(u.Rate), end: dnsEnd(end), key: helloKey(end.Secret), dkey: dnstun.Key(end.Secret)}, nil
}

// resolvConf is where the system's resolvers are listed.
var resolvConf = "/etc/resolv.conf"

// systemResolvers returns the nameserver lines of a resolv.conf, on port 53.
func systemResolvers(b []byte) []netip.AddrPort {
	var rs []netip.AddrPort
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		// A link-local address's zone (fe80::1%eth0) is kept by ParseAddr.
		if a, err := netip.ParseAddr(f[1]); err == nil {
			rs = append(rs, netip.AddrPortFrom(a, 53))
		}
	}
	return rs
}

// Dial starts a session with the origin; ctx bounds only the handshake.
func (d *DNSDialer) Dial(ctx context.Context) (Session, error) {
	ctx, cancel := context.WithTimeout(ctx, dnsHandshakeTimeout)
	defer cancel()
	c, err := dnstun.NewClient(dnstun.ClientConfig{Zone: d.zone, Key: d.dkey, Resolvers: d.resolvers, Rate: d.Rate, Cap: cmp.Or(int(d.cap.Load()), d.Cap)})
	if err != nil {
		return nil, fmt.Errorf("dns dial %s: %w", d.zone, err)
	}
	d.Client.Store(c)
	ks, err := dnsStreams.Dial(c, dnstun.ServerAddr, c.MTU(), c.Window())
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("dns dial %s: %w", d.zone, err)
	}
	conn := &dnsConn{Conn: ks, close: func() {
		d.cap.Store(int64(c.Cap()))
		c.Close()
	}}
	tc := tls.Client(conn, &tls.Config{
		ServerName: strings.TrimSuffix(string(d.zone), "."),
		MinVersion: tls.VersionTLS13,
		// The hellos bind to this TLS session, whatever the certificate.
		InsecureSkipVerify: true,
	})
	s, err := dnsHellos(ctx, tc, conn, d.key, d.end, true)
	if err != nil {
		conn.Close()
		if c.Answered.Load() == 0 {
			return nil, fmt.Errorf("dns %s: %w (no resolver answered: wrong resolver= addresses, or DNS blocked?)", d.zone, err)
		}
		if !tc.ConnectionState().HandshakeComplete {
			// The origin answers queries without the secret's MAC as
			// for any unknown name: nothing comes back.
			return nil, fmt.Errorf("dns %s: %w (resolvers answer, but not the origin's tunnel: a wrong FERRY_SECRET, the zone not delegated to the origin, or its clock off by more than %v?)", d.zone, err, dnstun.MaxSkew)
		}
		return nil, fmt.Errorf("dns %s: %w", d.zone, err)
	}
	return s, nil
}

// dnsHandshakeTimeout is longer than HandshakeTimeout: TLS and the hellos
// take four round trips, each one or two of the resolvers' (and the first
// query may wait for the resolver to find the zone's servers).
const dnsHandshakeTimeout = 30 * time.Second

// dnsHellos runs TLS's handshake and the hellos over tc, the dialer's side
// when dialer is set, and then yamux; ctx bounds both.
func dnsHellos(ctx context.Context, tc *tls.Conn, conn *dnsConn, key []byte, end End, dialer bool) (Session, error) {
	if dl, ok := ctx.Deadline(); ok {
		conn.Conn.SetDeadline(dl)
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", errors.Join(err, ctx.Err()))
	}
	cs := tc.ConnectionState()
	ekm, err := exporter(&cs)
	if err != nil {
		return nil, err
	}
	hello := helloSecond
	if dialer {
		hello = helloFirst
	}
	pflags, err := hello(tc, key, ekm, nil, end.flags())
	if err != nil {
		return nil, errors.Join(err, ctx.Err())
	}
	conn.Conn.SetDeadline(time.Time{})
	return newYamux(ctx, &dnsTLSConn{Conn: tc, under: conn}, end, pflags, true)
}

// dnsConn is a kcp session that ends what runs under it when it closes:
// the dialer's dnstun client, or the listener's reference to its server.
type dnsConn struct {
	net.Conn
	once  sync.Once
	close func()
}

func (c *dnsConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.close)
	return err
}

// dnsTLSConn closes kcp before TLS: TLS's close alert would wait up to 5 s
// for room in kcp's window towards a peer that may be gone.
type dnsTLSConn struct {
	net.Conn // *tls.Conn
	under    *dnsConn
}

func (c *dnsTLSConn) Close() error {
	c.under.Close()
	c.Conn.Close()
	return nil
}

// DNSListener is an origin's tunnel listener of the dns transport: the
// authoritative server of its zone, on UDP.
type DNSListener struct {
	pc  net.PacketConn
	tcp net.Listener // nil when TCP could not be had
	srv *dnstun.Server
	kl  StreamListener
	key []byte
	end End
	tls *tls.Config
	queue
	refusals *refusals

	// AuthFailures counts sessions whose hellos did not prove the secret
	// (their queries did: a replay of an edge's, most likely).
	AuthFailures atomic.Int64

	mu    sync.Mutex
	refs  int // the listener's own until Close, and one per session
	wg    sync.WaitGroup
	ended chan struct{}
}

// listenDNS serves u's zone on pc. The socket stays open while sessions
// accepted from it live, as QUIC's does (Listener.Close).
func listenDNS(pc net.PacketConn, u URL, o ListenOptions) (*DNSListener, error) {
	if dnsStreams.Listen == nil {
		return nil, errNoDNSStreams
	}
	z, err := dnstun.ParseZone(strings.TrimPrefix(u.Path, "/"))
	if err != nil {
		return nil, err
	}
	end := dnsEnd(o.End)
	srv := &dnstun.Server{Zone: z, Key: dnstun.Key(end.Secret), Log: end.Log}
	if host, _, err := net.SplitHostPort(u.Host); err == nil {
		if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() {
			srv.Addr = a
		}
	}
	kl, err := dnsStreams.Listen(srv, srv.MTU)
	if err != nil {
		return nil, err
	}
	l := &DNSListener{
		pc: pc, srv: srv, kl: kl, key: helloKey(end.Secret), end: end, queue: newQueue(), refs: 1, ended: make(chan struct{}),
		tls:      &tls.Config{Certificates: []tls.Certificate{*o.Certificate}, MinVersion: tls.VersionTLS13},
		refusals: &refusals{log: end.Log, transport: "dns", clientIPs: end.LogClientIPs},
	}
	// TCP on the same port, as an authoritative server answers on both;
	// without it (the port is taken for TCP), UDP alone.
	if ln, err := net.Listen("tcp", pc.LocalAddr().String()); err != nil {
		end.Log.Warn("dns tunnel listener: no TCP beside UDP", "addr", pc.LocalAddr().String(), "err", err)
	} else {
		l.tcp = ln
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			srv.ServeTCP(ln)
		}()
	}
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		srv.Serve(pc)
	}()
	go l.accept()
	return l, nil
}

// Server is the dnstun server under l, for its counters.
func (l *DNSListener) Server() *dnstun.Server { return l.srv }

func (l *DNSListener) Addr() net.Addr { return l.pc.LocalAddr() }

// accept takes the reliable streams and runs their handshakes, each on its own
// goroutine: dnstun's MaxSessions bounds how many.
func (l *DNSListener) accept() {
	defer l.wg.Done()
	for {
		ks, err := l.kl.Accept()
		if err != nil {
			return
		}
		if !l.ref() {
			ks.Close()
			continue
		}
		conn := &dnsConn{Conn: ks, close: l.unref}
		go l.handshake(conn)
	}
}

func (l *DNSListener) handshake(conn *dnsConn) {
	ctx, cancel := context.WithTimeout(l.ctx, dnsHandshakeTimeout)
	defer cancel()
	s, err := dnsHellos(ctx, tls.Server(conn, l.tls), conn, l.key, l.end, false)
	if err != nil {
		if authFailure(err) {
			l.AuthFailures.Add(1)
		}
		// A kcp session exists only for queries with the secret's MAC:
		// this is an edge (or a replay of one's queries), never a stranger.
		l.refusals.refused("dns tunnel refused", err, netip.Addr{})
		conn.Close()
		return
	}
	l.deliver(s)
}

// ref counts a session in, unless the listener has closed.
func (l *DNSListener) ref() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.refs == 0 || l.ctx.Err() != nil {
		return false
	}
	l.refs++
	return true
}

// unref counts one out; the last closes kcp's listener and the server,
// and with it the socket.
func (l *DNSListener) unref() {
	l.mu.Lock()
	l.refs--
	last := l.refs == 0
	l.mu.Unlock()
	if last {
		l.kl.Close()
		l.srv.Close()
		if l.tcp != nil {
			l.tcp.Close()
		}
		go func() {
			l.wg.Wait()
			l.refusals.close()
			close(l.ended)
		}()
	}
}

// Close stops accepting at once; the socket closes with the last session.
func (l *DNSListener) Close() error {
	l.mu.Lock()
	closed := l.ctx.Err() != nil
	l.cancel()
	l.mu.Unlock()
	if !closed {
		l.unref()
	}
	return nil
}

// Ended is closed once the listener and every session it accepted have
// closed, and its goroutines have ended.
func (l *DNSListener) Ended() <-chan struct{} { return l.ended }
