package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"

	"ferry/cert"
	"ferry/decoy"
	"ferry/internal/probe"
)

// listenQUICTunnel starts a QUIC tunnel listener with decoy (nil: the
// built-in one) for end.
func listenQUICTunnel(t *testing.T, end End, decoy http.Handler) *QUICListener {
	t.Helper()
	return listenOn(t, URL{Scheme: "quic", Host: "127.0.0.1:0"}, ListenOptions{End: end, Decoy: decoy}).(*QUICListener)
}

// h3Get fetches path from addr over HTTP/3 with quic-go's client.
func h3Get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	tr := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.Close()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s over HTTP/3: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestQUICDecoy checks that an HTTP/3 client gets the decoy from a QUIC
// tunnel listener: the built-in page as the ws listener shows it, and a
// decoy directory's pages and 404s.
func TestQUICDecoy(t *testing.T) {
	// One built-in page for both: each decoy.New without a seed makes
	// a page of its own.
	page := decoy.New(decoy.Options{Seed: []byte("one host")})
	ws := listenOn(t, URL{Scheme: "ws", Host: "127.0.0.1:0", Path: "/t"}, ListenOptions{End: transportEnd(true), Decoy: page})
	resp, err := http.Get("http://" + ws.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	wsBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ln := listenQUICTunnel(t, transportEnd(true), page)
	if code, body := h3Get(t, ln.Addr().String(), "/"); code != resp.StatusCode || body != string(wsBody) {
		t.Errorf("GET / over HTTP/3: %d %q, want %d %q as over ws", code, body, resp.StatusCode, wsBody)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<html>my site</html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln = listenQUICTunnel(t, transportEnd(true), decoy.New(decoy.Options{Dir: dir}))
	if code, body := h3Get(t, ln.Addr().String(), "/"); code != http.StatusOK || body != "<html>my site</html>" {
		t.Errorf("GET / over HTTP/3: %d %q, want the directory's index", code, body)
	}
	if code, _ := h3Get(t, ln.Addr().String(), "/missing"); code != http.StatusNotFound {
		t.Errorf("GET /missing over HTTP/3: %d, want 404", code)
	}
	if n := ln.DecoyHits.Load(); n != 2 {
		t.Errorf("%d decoy hits, want 2", n)
	}
}

// TestQUICOtherALPN checks that a handshake offering another application
// protocol than h3 (ferry's old ferry/1 included) fails against a tunnel
// listener exactly as against quic-go's HTTP/3 server.
func TestQUICOtherALPN(t *testing.T) {
	ref := probe.H3Server(t, http.NotFoundHandler(), nil)
	ln := listenQUICTunnel(t, transportEnd(true), nil)
	dial := func(addr, alpn string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := quic.DialAddr(ctx, addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}}, nil)
		if err == nil {
			conn.CloseWithError(0, "")
		}
		return err
	}
	for _, alpn := range []string{"ferry/1", "foo", "h3-29"} {
		want, got := dial(ref, alpn), dial(ln.Addr().String(), alpn)
		var te *quic.TransportError
		if !errors.As(want, &te) || te.ErrorCode != 0x178 {
			t.Fatalf("ALPN %s: the HTTP/3 server fails it with %v, want CRYPTO_ERROR 0x178", alpn, want)
		}
		if got == nil || got.Error() != want.Error() {
			t.Errorf("ALPN %s: the tunnel listener fails it with %v, want %v as the HTTP/3 server", alpn, got, want)
		}
	}
}

// dialH3Raw opens a QUIC connection with ALPN h3 to addr, as an HTTP/3
// client would, for a test to speak raw frames over.
func dialH3Raw(t *testing.T, ctx context.Context, addr string) *quic.Conn {
	t.Helper()
	conn, err := quic.DialAddr(ctx, addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{http3.NextProtoH3}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	return conn
}

// TestQUICWrongProof checks that a stranger whose first stream begins with
// the hello frame, with a wrong proof or one bound to another connection,
// gets HTTP/3, as quic-go's server gives it, and no tunnel: the stream,
// ended after the frame, is reset with H3_REQUEST_INCOMPLETE, and a request
// on the same connection gets the decoy.
func TestQUICWrongProof(t *testing.T) {
	ref := probe.H3Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "decoy") }), nil)
	ln := listenQUICTunnel(t, transportEnd(true), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "decoy") }))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := helloKey(transportSecret)
	other := dialH3Raw(t, ctx, ln.Addr().String())
	cs := other.ConnectionState().TLS
	otherEKM, err := exporter(&cs)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		hello []byte
	}{
		{"zero proof", append([]byte{helloVersion, FlagBound}, make([]byte, 32)...)},
		{"another connection's proof", helloMsg(key, FlagBound, otherEKM)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			probe := func(addr string) (resetCode quic.StreamErrorCode, body string) {
				conn := dialH3Raw(t, ctx, addr)
				st, err := conn.OpenStreamSync(ctx)
				if err != nil {
					t.Fatal(err)
				}
				st.Write(appendHelloFrame(nil, tc.hello))
				st.Close()
				_, err = io.ReadAll(st)
				var se *quic.StreamError
				if !errors.As(err, &se) {
					t.Fatalf("the stream ended with %v, want a reset", err)
				}
				tr := &http3.Transport{}
				resp, err := tr.NewClientConn(conn).RoundTrip(httpRequest(t, ctx, "https://"+addr+"/"))
				if err != nil {
					t.Fatalf("a request after the frame: %v", err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return se.ErrorCode, string(b)
			}
			wantCode, wantBody := probe(ref)
			before := ln.AuthFailures.Load()
			code, body := probe(ln.Addr().String())
			if code != wantCode || body != wantBody {
				t.Errorf("the tunnel listener reset the stream with %#x and answered %q, want %#x and %q as the HTTP/3 server", code, body, wantCode, wantBody)
			}
			if wantCode != quic.StreamErrorCode(http3.ErrCodeRequestIncomplete) {
				t.Errorf("the HTTP/3 server reset the stream with %#x, want H3_REQUEST_INCOMPLETE", wantCode)
			}
			if n := ln.AuthFailures.Load() - before; n != 1 {
				t.Errorf("%d authentication failures counted, want 1", n)
			}
		})
	}
	acceptCtx, acceptCancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer acceptCancel()
	if s, err := ln.Accept(acceptCtx); err == nil {
		s.Close()
		t.Error("a stranger got a session")
	}
}

func httpRequest(t *testing.T, ctx context.Context, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestQUICFirstFrameUnexpected checks that a first frame that is neither
// HEADERS nor the hello frame closes the connection as quic-go's HTTP/3
// server closes it (H3_FRAME_UNEXPECTED), and that a stranger whose first
// stream stays silent still has its second stream served at once.
func TestQUICFirstFrameUnexpected(t *testing.T) {
	ref := probe.H3Server(t, http.NotFoundHandler(), nil)
	ln := listenQUICTunnel(t, transportEnd(true), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	closed := func(addr string) error {
		conn := dialH3Raw(t, ctx, addr)
		st, err := conn.OpenStreamSync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.Write([]byte{0x00, 0x02, 'h', 'i'}) // DATA
		select {
		case <-conn.Context().Done():
		case <-ctx.Done():
			t.Fatal("the connection is still open")
		}
		return context.Cause(conn.Context())
	}
	want, got := closed(ref), closed(ln.Addr().String())
	if got.Error() != want.Error() {
		t.Errorf("closed with %v, want %v as the HTTP/3 server", got, want)
	}

	conn := dialH3Raw(t, ctx, ln.Addr().String())
	silent, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	silent.Write([]byte{0x80}) // the first byte of a 4-byte frame type
	resp, err := (&http3.Transport{}).NewClientConn(conn).RoundTrip(httpRequest(t, ctx, "https://"+ln.Addr().String()+"/"))
	if err != nil {
		t.Fatalf("a request beside a silent first stream: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a request beside a silent first stream: %d", resp.StatusCode)
	}
}

// TestQUICReverse runs a session the other way round: the edge listens
// (and is an HTTP/3 server to strangers) and the origin dials it; the edge
// still opens the streams.
func TestQUICReverse(t *testing.T) {
	ln := listenQUICTunnel(t, transportEnd(false), nil)
	d, err := NewDialer(URL{Scheme: "quic", Host: ln.Addr().String()}, transportEnd(true))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	origin, edge := dialAccept(t, ctx, ln, d)
	defer origin.Close()
	defer edge.Close()
	carries(t, ctx, edge, origin)
	if code, _ := h3Get(t, ln.Addr().String(), "/"); code != http.StatusOK {
		t.Errorf("a stranger at the edge's tunnel listener got %d", code)
	}
}

// TestQUICSameRole checks that two origins find out, and say, that they
// are both origins, over QUIC as over yamux.
func TestQUICSameRole(t *testing.T) {
	ln := listenQUICTunnel(t, transportEnd(true), nil)
	d, err := NewDialer(URL{Scheme: "quic", Host: ln.Addr().String()}, transportEnd(true))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s, err := d.Dial(ctx); !errors.Is(err, ErrSameRole) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("an origin dialling an origin: %v, want ErrSameRole", err)
	}
}

// TestQUICStrangersQuiet checks that strangers (another ALPN, HTTP/3
// requests, a wrong proof) make a tunnel listener log nothing above debug,
// but the one summary of refusals at its Close.
func TestQUICStrangersQuiet(t *testing.T) {
	var logs lockedBuffer
	end := transportEnd(true)
	end.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ln, err := Listen(URL{Scheme: "quic", Host: "127.0.0.1:0"}, ListenOptions{End: end})
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		if conn, err := quic.DialAddr(ctx, addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"ferry/1"}}, nil); err == nil {
			conn.CloseWithError(0, "")
		}
		h3Get(t, addr, "/")
		conn := dialH3Raw(t, ctx, addr)
		st, err := conn.OpenStreamSync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.Write(appendHelloFrame(nil, append([]byte{helloVersion, FlagBound}, make([]byte, 32)...)))
		st.Close()
		io.ReadAll(st)
	}
	if lines := append(logs.lines("INFO"), append(logs.lines("WARN"), logs.lines("ERROR")...)...); len(lines) > 0 {
		t.Errorf("strangers made the listener log above debug:\n%s", strings.Join(lines, "\n"))
	}
	ln.Close()
	if lines := logs.lines("INFO"); len(lines) != 1 || !strings.Contains(lines[0], "refused=3") {
		t.Errorf("at Close, info lines %q, want one summary of 3 refusals", lines)
	}
}

// FuzzParseHelloFrame checks that parseHelloFrame never reads past what it
// is given, asks only for more than it has, and finds the hello of any
// frame appendHelloFrame writes, however the bytes after it go on.
func FuzzParseHelloFrame(f *testing.F) {
	f.Add(appendHelloFrame(nil, make([]byte, helloLen)))
	f.Add([]byte{0x01, 0x10})
	f.Add([]byte{0xc0, 0, 0, 0, 0, 0x0b, 0x66, 0xa4})
	f.Fuzz(func(t *testing.T, b []byte) {
		hello, n, need := parseHelloFrame(b)
		switch {
		case hello != nil:
			if n > len(b) || len(hello) != helloLen || &hello[0] != &b[n-helloLen] || need != 0 {
				t.Fatalf("hello %x, n %d, need %d of %d bytes", hello, n, need, len(b))
			}
		case need != 0:
			if need <= len(b) || need > 2*8+helloLen {
				t.Fatalf("need %d with %d bytes", need, len(b))
			}
			// What it has is a prefix of what it needs: more bytes may
			// tell, or ask for more again, never go back on a verdict.
			if h, _, more := parseHelloFrame(append(b[:len(b):len(b)], make([]byte, need-len(b))...)); h == nil && more != 0 && more <= need {
				t.Fatalf("need %d, then %d", need, more)
			}
		}
		if len(b) >= helloLen {
			framed := append(appendHelloFrame(nil, b[:helloLen]), b...)
			h, n, _ := parseHelloFrame(framed)
			if string(h) != string(b[:helloLen]) || n != helloFrameLen {
				t.Fatalf("the frame of %x parsed as %x, %d", b[:helloLen], h, n)
			}
		}
	})
}

// paramsTrace keeps the transport parameters a connection's peer sent.
type paramsTrace struct {
	mu   sync.Mutex
	peer []qlog.ParametersSet
}

func (p *paramsTrace) AddProducer() qlogwriter.Recorder { return p }
func (p *paramsTrace) Close() error                     { return nil }
func (p *paramsTrace) RecordEvent(ev qlogwriter.Event) {
	if ps, ok := ev.(qlog.ParametersSet); ok && ps.Initiator == qlog.InitiatorRemote {
		p.mu.Lock()
		p.peer = append(p.peer, ps)
		p.mu.Unlock()
	}
}

// visible is what p's peers sent, but what differs on every connection.
func (p *paramsTrace) visible(t *testing.T) qlog.ParametersSet {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.peer) == 0 {
		t.Fatal("no transport parameters seen")
	}
	// A client may connect twice (a retry on a loaded machine): its
	// connections must show the same parameters, but for their IDs.
	var sets []qlog.ParametersSet
	for _, ps := range p.peer {
		ps.OriginalDestinationConnectionID, ps.InitialSourceConnectionID, ps.RetrySourceConnectionID = quic.ConnectionID{}, quic.ConnectionID{}, quic.ConnectionID{}
		ps.StatelessResetToken = nil
		sets = append(sets, ps)
	}
	p.peer = nil
	for _, ps := range sets[1:] {
		if !reflect.DeepEqual(ps, sets[0]) {
			t.Fatalf("connections of one client showed different transport parameters:\n%+v\n%+v", sets[0], ps)
		}
	}
	return sets[0]
}

func (p *paramsTrace) tracer(context.Context, bool, quic.ConnectionID) qlogwriter.Trace { return p }

// TestQUICTransportParameters checks what anyone can read of a QUIC
// tunnel's handshake against quic-go's HTTP/3 client and server: the
// parameters in an edge's Initial are those of the HTTP/3 client, and so
// are an origin's in reverse mode but for the streams the edge opens; the
// parameters an edge's tunnel listener shows a stranger are those of the
// HTTP/3 server, and an origin's but for the streams (MaxStreamsPerSession).
func TestQUICTransportParameters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The clients' Initials, at a plain QUIC listener that records them.
	var seen paramsTrace
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ql, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}, NextProtos: []string{ALPN}}, &quic.Config{Tracer: seen.tracer})
	if err != nil {
		t.Fatal(err)
	}
	defer ql.Close()
	go func() {
		for {
			conn, err := ql.Accept(context.Background())
			if err != nil {
				return
			}
			conn.CloseWithError(0, "")
		}
	}()
	tr := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.Close()
	tr.RoundTrip(httpRequest(t, ctx, "https://"+ql.Addr().String()+"/"))
	h3Client := seen.visible(t)
	for _, origin := range []bool{false, true} {
		d := newQUICDialer(URL{Scheme: "quic", Host: ql.Addr().String()}, transportEnd(origin))
		if s, err := d.Dial(ctx); err == nil {
			s.Close()
		}
		got, want := seen.visible(t), h3Client
		if origin {
			want.InitialMaxStreamsBidi = MaxStreamsPerSession
		}
		if got != want {
			t.Errorf("the dialer's Initial (origin %v) carries\n%+v\nwant\n%+v", origin, got, want)
		}
	}

	// The listeners', as a stranger's client sees them.
	var shown paramsTrace
	visible := func(addr string) qlog.ParametersSet {
		conn, err := quic.DialAddr(ctx, addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPN}}, &quic.Config{Tracer: shown.tracer})
		if err != nil {
			t.Fatal(err)
		}
		conn.CloseWithError(0, "")
		return shown.visible(t)
	}
	h3Server := visible(probe.H3Server(t, http.NotFoundHandler(), nil))
	for _, origin := range []bool{false, true} {
		got, want := visible(listenQUICTunnel(t, transportEnd(origin), nil).Addr().String()), h3Server
		if origin {
			want.InitialMaxStreamsBidi = MaxStreamsPerSession + 1
		}
		if got != want {
			t.Errorf("the listener (origin %v) shows\n%+v\nwant\n%+v", origin, got, want)
		}
	}
}

// udpRelay forwards one client's datagrams to a server and back, until
// cut, when it drops them all, as a censor that blocks UDP mid-session.
type udpRelay struct {
	pc     net.PacketConn
	up     *net.UDPConn
	cut    atomic.Bool
	client atomic.Pointer[net.Addr]
	wg     sync.WaitGroup
}

func startUDPRelay(t *testing.T, server string) *udpRelay {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	r := &udpRelay{pc: pc, up: up}
	r.wg.Go(func() {
		b := make([]byte, 1<<16)
		for {
			n, from, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			r.client.Store(&from)
			if !r.cut.Load() {
				up.Write(b[:n])
			}
		}
	})
	r.wg.Go(func() {
		b := make([]byte, 1<<16)
		for {
			n, err := up.Read(b)
			if err != nil {
				return
			}
			if to := r.client.Load(); to != nil && !r.cut.Load() {
				pc.WriteTo(b[:n], *to)
			}
		}
	})
	t.Cleanup(func() {
		pc.Close()
		up.Close()
		r.wg.Wait()
	})
	return r
}

// TestQUICDeadPathGivenUp checks that a QUIC session whose path stops
// carrying packets ends by its pings, at PingTimeout after the last pong,
// long before QUIC's 30 s idle timeout would end it.
func TestQUICDeadPathGivenUp(t *testing.T) {
	end := func(origin bool) End {
		e := transportEnd(origin)
		e.KeepAlive, e.PingTimeout = 50*time.Millisecond, 300*time.Millisecond
		return e
	}
	ln := listenOn(t, URL{Scheme: "quic", Host: "127.0.0.1:0"}, ListenOptions{End: end(true)})
	relay := startUDPRelay(t, ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	edge, origin := dialAccept(t, ctx, ln, newQUICDialer(URL{Scheme: "quic", Host: relay.pc.LocalAddr().String()}, end(false)))
	defer edge.Close()
	defer origin.Close()
	carries(t, ctx, edge, origin)
	relay.cut.Store(true)
	cut := time.Now()
	for _, s := range []Session{edge, origin} {
		select {
		case <-s.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a session on a dead path still up after 5 s")
		}
	}
	t.Logf("both ends gave the dead path up %v after the cut", time.Since(cut).Round(time.Millisecond))
}
