package tunnel

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// httpTransport is a client of the protocols given, from ip, that trusts any
// certificate.
func httpTransport(ip string, protos ...func(*http.Protocols, bool)) *http.Transport {
	var p http.Protocols
	for _, set := range protos {
		set(&p, true)
	}
	return &http.Transport{
		DialContext:     (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}).DialContext,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "origin.example"},
		Protocols:       &p,
	}
}

// TestWSListenerHTTPVersions: a wss listener serves its decoy over HTTP/2 to
// an h2-only client and over HTTP/1.1 to an HTTP/1.1 client, as an HTTPS
// site does; over h2, even a request with a good token at the tunnel's path
// gets the decoy, and opens no session. A ws listener speaks no h2c.
func TestWSListenerHTTPVersions(t *testing.T) {
	site := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "my site") })
	wss := listenOn(t, URL{Scheme: "wss", Host: "127.0.0.1:0", Path: "/t"}, ListenOptions{End: transportEnd(true), Decoy: site}).(*WSListener)
	for _, tc := range []struct {
		name  string
		proto func(*http.Protocols, bool)
		major int
	}{
		{"h2", (*http.Protocols).SetHTTP2, 2},
		{"HTTP/1.1", (*http.Protocols).SetHTTP1, 1},
	} {
		tr := httpTransport("127.0.0.2", tc.proto)
		for _, path := range []string{"/", "/t"} {
			req, _ := http.NewRequest(http.MethodGet, "https://"+wss.Addr().String()+path, nil)
			req.Host = "origin.example"
			req.Header.Set("Cookie", tokenCookie(Token(transportSecret, time.Now(), "origin.example", "/t")))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatalf("%s client: %v", tc.name, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != tc.major || resp.StatusCode != http.StatusOK || string(body) != "my site" {
				t.Errorf("%s client at %s: HTTP/%d %d %q, want HTTP/%d 200 with the decoy", tc.name, path, resp.ProtoMajor, resp.StatusCode, body, tc.major)
			}
		}
		tr.CloseIdleConnections()
	}
	if n := wss.AuthFailures.Load(); n != 0 {
		t.Errorf("%d authentication failures: a request that is no upgrade is the decoy's, token or not", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if s, err := wss.Accept(ctx); s != nil || err == nil {
		t.Errorf("a session from plain requests: %v, %v", s, err)
	}

	ws := listenOn(t, URL{Scheme: "ws", Host: "127.0.0.1:0", Path: "/t"}, ListenOptions{End: transportEnd(true), Decoy: site})
	tr := httpTransport("127.0.0.2", (*http.Protocols).SetUnencryptedHTTP2)
	defer tr.CloseIdleConnections()
	if resp, err := tr.RoundTrip(must(http.NewRequest(http.MethodGet, "http://"+ws.Addr().String()+"/", nil))); err == nil {
		resp.Body.Close()
		t.Errorf("an h2c client got HTTP/%d %d from a ws listener, want no HTTP/2", resp.ProtoMajor, resp.StatusCode)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// h2Conn is one HTTP/2 connection to a wss listener from ip.
func h2Conn(t *testing.T, ln Listener, ip string) *http.ClientConn {
	t.Helper()
	tr := httpTransport(ip, (*http.Protocols).SetHTTP2)
	cc, err := tr.NewClientConn(context.Background(), "https", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// h2Get asks for the decoy's page on cc.
func h2Get(t *testing.T, cc *http.ClientConn) error {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "https://origin.example/", nil)
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && (resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "<html")) {
		t.Errorf("h2 answer: HTTP/%d %d %q", resp.ProtoMajor, resp.StatusCode, body)
	}
	return err
}

// TestWSListenerH2Settings reads the SETTINGS a wss listener's HTTP/2 server
// opens with: the bounds of wsHTTP2, which are what a stranger's h2
// connection can make the listener hold.
func TestWSListenerH2Settings(t *testing.T) {
	ln := listenOn(t, URL{Scheme: "wss", Host: "127.0.0.1:0", Path: "/t"}, ListenOptions{End: transportEnd(true)})
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// The client preface and an empty SETTINGS frame (RFC 9113 §3.4).
	if _, err := io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"); err != nil {
		t.Fatal(err)
	}
	var fh [9]byte
	if _, err := io.ReadFull(c, fh[:]); err != nil {
		t.Fatal(err)
	}
	if fh[3] != 4 { // SETTINGS
		t.Fatalf("first frame of type %d, want SETTINGS", fh[3])
	}
	payload := make([]byte, int(fh[0])<<16|int(fh[1])<<8|int(fh[2]))
	if _, err := io.ReadFull(c, payload); err != nil {
		t.Fatal(err)
	}
	got := map[uint16]uint32{}
	for p := payload; len(p) >= 6; p = p[6:] {
		got[uint16(p[0])<<8|uint16(p[1])] = uint32(p[2])<<24 | uint32(p[3])<<16 | uint32(p[4])<<8 | uint32(p[5])
	}
	for id, want := range map[uint16]uint32{
		0x3: 128,      // MAX_CONCURRENT_STREAMS
		0x4: 64 << 10, // INITIAL_WINDOW_SIZE
		0x5: 16 << 10, // MAX_FRAME_SIZE
	} {
		if got[id] != want {
			t.Errorf("setting %#x is %d, want %d", id, got[id], want)
		}
	}
	if _, ok := got[0x8]; ok {
		t.Error("ENABLE_CONNECT_PROTOCOL offered: no WebSocket over h2 is served")
	}
}

// TestWSListenerDecoyRequestsCapped: the strangers' requests a listener
// serves at once are capped (twice its connection cap), so that HTTP/2's
// many streams a connection cannot make it hold a handler for each: one
// over the cap is reset, and once those in flight end the decoy serves
// again.
func TestWSListenerDecoyRequestsCapped(t *testing.T) {
	const maxConns = 2
	entered, release := make(chan struct{}), make(chan struct{})
	site := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "my site")
	})
	wss := listenOn(t, URL{Scheme: "wss", Host: "127.0.0.1:0", Path: "/t"}, ListenOptions{End: transportEnd(true), Decoy: site, MaxConns: maxConns}).(*WSListener)
	tr := httpTransport("127.0.0.2", (*http.Protocols).SetHTTP2)
	defer tr.CloseIdleConnections()
	get := func(path string) (*http.Response, error) {
		return tr.RoundTrip(must(http.NewRequest(http.MethodGet, "https://"+wss.Addr().String()+path, nil)))
	}
	done := make(chan error)
	for range 2 * maxConns {
		go func() {
			resp, err := get("/slow")
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		<-entered
	}
	if resp, err := get("/"); err == nil {
		resp.Body.Close()
		t.Errorf("a request over the cap: HTTP/%d %d, want it reset", resp.ProtoMajor, resp.StatusCode)
	}
	close(release)
	for range 2 * maxConns {
		if err := <-done; err != nil {
			t.Errorf("a request within the cap: %v", err)
		}
	}
	resp, err := get("/")
	if err != nil {
		t.Fatalf("once the requests in flight ended: %v", err)
	}
	resp.Body.Close()
}
