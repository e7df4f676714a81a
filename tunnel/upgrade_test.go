package tunnel

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/cert"
)

// hello is what a test server saw of a ClientHello.
type hello struct {
	sni  string
	alpn []string
}

// captureServer is a TLS server (or a plain one when tlsOn is false) that
// records each ClientHello's SNI and ALPN and the head of each request, and
// answers with answer.
type captureServer struct {
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	hellos []hello
	heads  []string
}

func newCaptureServer(t *testing.T, tlsOn bool, answer func(w io.Writer, head string)) *captureServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &captureServer{ln: ln}
	if tlsOn {
		crt, err := cert.SelfSigned()
		if err != nil {
			t.Fatal(err)
		}
		s.ln = tls.NewListener(ln, &tls.Config{
			GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
				s.mu.Lock()
				s.hellos = append(s.hellos, hello{h.ServerName, slices.Clone(h.SupportedProtos)})
				s.mu.Unlock()
				return nil, nil
			},
			Certificates: []tls.Certificate{crt},
			NextProtos:   []string{"h2", "http/1.1"},
		})
	}
	s.wg.Go(func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				head, err := readHead(bufio.NewReader(c))
				if err != nil {
					return
				}
				s.mu.Lock()
				s.heads = append(s.heads, head)
				s.mu.Unlock()
				answer(c, head)
			})
		}
	})
	t.Cleanup(func() {
		s.ln.Close()
		s.wg.Wait()
	})
	return s
}

// readHead reads an HTTP message's head, up to and without its blank line.
func readHead(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if line == "\r\n" {
			return b.String(), nil
		}
		b.WriteString(line)
	}
}

// headLines splits a head into its lines, and takes out the values that
// differ from one upgrade to the next (the key, and the token, checked
// apart), returning them.
func headLines(t *testing.T, head string) (lines []string, key, token string) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSuffix(head, "\r\n"), "\r\n") {
		if v, ok := strings.CutPrefix(l, "Sec-WebSocket-Key: "); ok {
			key, l = v, "Sec-WebSocket-Key: KEY"
		}
		if v, ok := strings.CutPrefix(l, "Cookie: "+TokenCookie+"="); ok {
			token, l = v, "Cookie: "+TokenCookie+"=TOKEN"
		}
		lines = append(lines, l)
	}
	return lines, key, token
}

// chromeUpgrade is the head Chrome sends for new WebSocket(url) from a page
// of url's own site, host being url's host without a default port.
func chromeUpgrade(path, host, origin string) []string {
	return []string{
		"GET " + path + " HTTP/1.1",
		"Host: " + host,
		"Connection: Upgrade",
		"Pragma: no-cache",
		"Cache-Control: no-cache",
		"User-Agent: " + BrowserUserAgent,
		"Upgrade: websocket",
		"Origin: " + origin,
		"Sec-WebSocket-Version: 13",
		"Accept-Encoding: gzip, deflate, br, zstd",
		"Accept-Language: en-US,en;q=0.9",
		"Cookie: " + TokenCookie + "=TOKEN",
		"Sec-WebSocket-Key: KEY",
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
	}
}

func dialerOf(t *testing.T, raw string) *WSDialer {
	t.Helper()
	u, err := ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	return newWSDialer(u, transportEnd(false))
}

// TestUpgradeLooksLikeChrome captures an edge's wss upgrade at a TLS server
// of the test's own: the ClientHello offers http/1.1 alone with the sni=
// name, and the request has Chrome's header set, order and spelling, with
// a token in its cookie that is good for the URL's host and path. The
// server answers as a site without the tunnel does, and the dial says so.
func TestUpgradeLooksLikeChrome(t *testing.T) {
	s := newCaptureServer(t, true, func(w io.Writer, _ string) {
		io.WriteString(w, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found")
	})
	_, port, _ := net.SplitHostPort(s.ln.Addr().String())
	for _, tc := range []struct {
		url, host, origin string
	}{
		{"wss://origin.example:" + port + "/t?connect=" + s.ln.Addr().String() + "&sni=front.example", "origin.example:" + port, "https://origin.example:" + port},
		{"wss://origin.example/t?connect=" + s.ln.Addr().String() + "&sni=front.example", "origin.example", "https://origin.example"},
		{"wss://[2001:db8::1]:443/t?connect=" + s.ln.Addr().String() + "&sni=front.example", "[2001:db8::1]", "https://[2001:db8::1]"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := dialerOf(t, tc.url).Dial(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "HTTP 404 instead of an upgrade") {
			t.Errorf("%s: dial to a site without the tunnel: %v", tc.url, err)
		}
		s.mu.Lock()
		h, head := s.hellos[len(s.hellos)-1], s.heads[len(s.heads)-1]
		s.mu.Unlock()
		if h.sni != "front.example" || !slices.Equal(h.alpn, []string{"http/1.1"}) {
			t.Errorf("%s: ClientHello with SNI %q and ALPN %q, want front.example and [http/1.1]", tc.url, h.sni, h.alpn)
		}
		lines, key, token := headLines(t, head)
		if want := chromeUpgrade("/t", tc.host, tc.origin); !slices.Equal(lines, want) {
			t.Errorf("%s: upgrade request\n%s\nwant\n%s", tc.url, strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
		if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
			t.Errorf("%s: Sec-WebSocket-Key %q is not 16 bytes of base64", tc.url, key)
		}
		if err := NewVerifier(transportSecret).Verify(token, tc.host, "/t"); err != nil {
			t.Errorf("%s: the cookie's token: %v", tc.url, err)
		}
	}
}

// TestUpgradeRefusesCompression: a server that takes up the
// permessage-deflate the edge offers fails the dial; no session runs
// compressed.
func TestUpgradeRefusesCompression(t *testing.T) {
	s := newCaptureServer(t, true, func(w io.Writer, head string) {
		_, key, _ := headLines(t, head)
		h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		io.WriteString(w, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: "+base64.StdEncoding.EncodeToString(h[:])+"\r\n"+
			"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=15\r\n\r\n")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := dialerOf(t, "wss://"+s.ln.Addr().String()+"/t").Dial(ctx); err == nil || !strings.Contains(err.Error(), "extension") {
		t.Fatalf("dial to a server that compresses: %v, want a refusal of the extension", err)
	}
}

// tee is a TCP proxy in front of a listener that records what each way
// carried.
type tee struct {
	ln       net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	up, down bytes.Buffer
}

func newTee(t *testing.T, to string) *tee {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tee{ln: ln}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			copyTo := func(dst, src net.Conn, rec *bytes.Buffer) {
				defer dst.Close()
				defer src.Close()
				io.Copy(dst, io.TeeReader(src, writerFunc(func(b []byte) (int, error) {
					p.mu.Lock()
					defer p.mu.Unlock()
					return rec.Write(b)
				})))
			}
			p.wg.Go(func() { copyTo(s, c, &p.up) })
			p.wg.Go(func() { copyTo(c, s, &p.down) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestUpgradeThroughListener carries a tunnel from an edge to a ws listener
// through a proxy that records both ways: the upgrade is Chrome's, and the
// listener's 101 declines permessage-deflate.
func TestUpgradeThroughListener(t *testing.T) {
	ln := listenOn(t, URL{Scheme: "ws", Host: "127.0.0.1:0", Path: "/t"}, ListenOptions{End: transportEnd(true)})
	p := newTee(t, ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	edge, origin := connect(t, ctx, ln, "ws://origin.example/t?connect="+p.ln.Addr().String())
	carries(t, ctx, edge, origin)
	edge.Close()
	origin.Close()

	p.mu.Lock()
	up, down := p.up.String(), p.down.String()
	p.mu.Unlock()
	req, err := readHead(bufio.NewReader(strings.NewReader(up)))
	if err != nil {
		t.Fatal(err)
	}
	if lines, _, _ := headLines(t, req); !slices.Equal(lines, chromeUpgrade("/t", "origin.example", "http://origin.example")) {
		t.Errorf("upgrade request\n%s", strings.Join(lines, "\n"))
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(down)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Extensions") != "" {
		t.Errorf("the listener answered %d with extensions %q, want 101 and none", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Extensions"))
	}
}

// recordingTLS is a TLSClient that records the configs it is given.
type recordingTLS struct {
	mu      sync.Mutex
	configs []*tls.Config
}

func (r *recordingTLS) Handshake(ctx context.Context, conn net.Conn, config *tls.Config) (TLSConn, error) {
	r.mu.Lock()
	r.configs = append(r.configs, config)
	r.mu.Unlock()
	return stdTLS{}.Handshake(ctx, conn, config)
}

// TestTLSClientSeam: a wss tunnel comes up through the TLSClient the
// dialer is given, which gets the server name and ALPN to send.
func TestTLSClientSeam(t *testing.T) {
	ln := listenOn(t, URL{Scheme: "wss", Host: "127.0.0.1:0", Path: "/t"}, ListenOptions{End: transportEnd(true)})
	u, err := ParseURL("wss://origin.example/t?connect=" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingTLS{}
	d := newWSDialerTLS(u, transportEnd(false), rec)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	edge, origin := dialAccept(t, ctx, ln, d)
	defer edge.Close()
	defer origin.Close()
	carries(t, ctx, edge, origin)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.configs) != 1 || rec.configs[0].ServerName != "origin.example" || !slices.Equal(rec.configs[0].NextProtos, []string{"http/1.1"}) {
		t.Fatalf("the TLS client got %d configs (%+v), want one for origin.example with ALPN http/1.1", len(rec.configs), rec.configs)
	}
}
