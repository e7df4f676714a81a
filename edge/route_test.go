package edge

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"ferry/config"
	"ferry/internal/scan"
	"ferry/internal/tunneltest"
	"ferry/pool"
	"ferry/tunnel"
)

// TestWhatsAppOpenings checks that WhatsApp's chat openings reach the
// route byte for byte through every kind of chat listener, also when the
// client's first write is split.
func TestWhatsAppOpenings(t *testing.T) {
	e := startScannerEdge(t, nil)
	for _, kind := range []string{"tcp", "tls", "proxy+tcp", "proxy+tls", "off"} {
		for name, o := range map[string][]byte{"native": openingNative, "web": openingWeb} {
			for _, split := range []int{0, 1, 9} {
				c := dialKind(t, e, kind, "")
				if split > 0 {
					c.Write(o[:split])
					// The edge must not decide on the first bytes alone:
					// the rest follows in a write of its own.
				}
				c.Write(o[split:])
				got := make([]byte, len(o))
				if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, o) {
					t.Errorf("%s %s split %d: echo %x, %v; want %x", kind, name, split, got, err, o)
				}
				c.Close()
			}
		}
	}
	for _, c := range e.connected() {
		if c != "chat/" {
			t.Errorf("connect %q, want chat with no server name", c)
		}
	}
}

// dialKind connects to the edge's listener of kind, through TLS with
// server name sni for the tls ones, with a PROXY header for proxy+ ones.
func dialKind(t *testing.T, e *scannerEdge, kind, sni string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", e.addr[kind])
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if strings.HasPrefix(kind, "proxy+") {
		io.WriteString(c, "PROXY TCP4 198.51.100.7 127.0.0.1 40000 443\r\n")
	}
	if strings.HasSuffix(kind, "tls") {
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: sni})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("%s: TLS: %v", kind, err)
		}
		return tc
	}
	return c
}

// mediaVisit is what a TLS client with server name sni sees on the edge's
// listener of kind: whether the media server's certificate came back, and
// the site's status line if it did not.
func mediaVisit(t *testing.T, e *scannerEdge, kind, sni string) (media bool, status string) {
	t.Helper()
	c, err := net.Dial("tcp", e.addr[kind])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: sni})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("%s %q: TLS: %v", kind, sni, err)
	}
	if bytes.Equal(tc.ConnectionState().PeerCertificates[0].Raw, e.mediaCert.Leaf.Raw) {
		return true, ""
	}
	io.WriteString(tc, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	b, _ := io.ReadAll(tc)
	line, _, _ := strings.Cut(string(b), "\r\n")
	return false, line
}

// TestMediaBySNI checks that a ClientHello for an allowed media name is
// passed through to the media route with its name, and that any other gets
// the edge's own certificate and web site, on media and tls listeners.
func TestMediaBySNI(t *testing.T) {
	e := startScannerEdge(t, nil)
	for _, kind := range []string{"media", "tls"} {
		if media, _ := mediaVisit(t, e, kind, "mmg.whatsapp.net"); !media {
			t.Errorf("%s: an allowed media name was not passed through", kind)
		}
		for _, sni := range []string{"", "example.com", "whatsapp.net", "mmg.whatsapp.net.evil.example"} {
			media, status := mediaVisit(t, e, kind, sni)
			if media || status != "HTTP/1.1 200 OK" {
				t.Errorf("%s %q: media %v, site %q; want the web site", kind, sni, media, status)
			}
		}
	}
	want := []string{"media/mmg.whatsapp.net", "media/mmg.whatsapp.net"}
	if got := e.connected(); !slices.Equal(got, want) {
		t.Errorf("connects %v, want %v", got, want)
	}
}

// TestMediaAfterChat checks that with MediaAfterChat, media passes only for
// an address that had a chat connection.
func TestMediaAfterChat(t *testing.T) {
	e := startScannerEdge(t, func(s *Server) { s.MediaAfterChat = true })
	if media, status := mediaVisit(t, e, "media", "mmg.whatsapp.net"); media || status != "HTTP/1.1 200 OK" {
		t.Errorf("before any chat: media %v, site %q; want the web site", media, status)
	}
	// A chat from another address (a PROXY header's) opens nothing for
	// this one.
	c := dialKind(t, e, "proxy+tcp", "")
	c.Write(openingWeb)
	io.ReadFull(c, make([]byte, len(openingWeb)))
	c.Close()
	if media, _ := mediaVisit(t, e, "media", "mmg.whatsapp.net"); media {
		t.Errorf("after another address's chat: passed through")
	}
	c = dialKind(t, e, "tcp", "")
	c.Write(openingNative)
	io.ReadFull(c, make([]byte, len(openingNative)))
	c.Close()
	for _, kind := range []string{"media", "tls"} {
		if media, _ := mediaVisit(t, e, kind, "mmg.whatsapp.net"); !media {
			t.Errorf("%s after a chat: not passed through", kind)
		}
	}
}

// FuzzClientHello feeds the TLS side of a media listener whatever a
// stranger sends first: it never panics, never writes to a client it
// passes through, and passes through only bytes the client sent, in order.
func FuzzClientHello(f *testing.F) {
	for _, sni := range []string{"mmg.whatsapp.net", "example.com", ""} {
		f.Add(scan.ClientHello(f, sni))
	}
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0x00})
	srv := &Server{TLS: &tls.Config{Certificates: []tls.Certificate{mustCert(f)}}, MediaNames: []string{"*.whatsapp.net"}}
	side := newTLSSide(srv, true)
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &memConn{r: bytes.NewReader(in)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h := side.handshake(ctx, c, netip.AddrPort{})
		if h.pass {
			if c.w.Len() != 0 {
				t.Fatalf("wrote %d bytes to a client passed through", c.w.Len())
			}
			if !bytes.HasPrefix(in, h.rec) || len(h.rec) == 0 {
				t.Fatalf("passes through %x, not a prefix of what was sent", h.rec)
			}
			if !config.MatchName("*.whatsapp.net", h.serverName) {
				t.Fatalf("passed through for %q", h.serverName)
			}
		}
		if h.notTLS && !bytes.HasPrefix(in, h.rec) {
			t.Fatalf("replays %x, not a prefix of what was sent", h.rec)
		}
	})
}

// memConn is a client that sends r and then ends, and whose writes are
// kept.
type memConn struct {
	net.Conn // nil: only what is below is called
	r        *bytes.Reader
	w        bytes.Buffer
}

func (c *memConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *memConn) Write(p []byte) (int, error)      { return c.w.Write(p) }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }

// TestMediaOldOrigin checks that media still works through an origin older
// than the header's version 2, which refuses a server name as a bad
// header: Send asks again without the name.
func TestMediaOldOrigin(t *testing.T) {
	sess, originSess := tunneltest.Pair(tunneltest.Options{})
	tun := &Tunnels{Pool: pool.Pool{Peers: []pool.Peer{{Name: "old", Dialer: tunneltest.Sessions(sess)}}, Size: 1, Log: slog.New(slog.DiscardHandler)}}
	ctx := runTunnels(t, tun)
	// The old origin: version 1 headers only; it echoes the first bytes.
	hello := scan.ClientHello(t, "mmg.whatsapp.net")
	var names []string
	served := make(chan struct{})
	go func() {
		defer close(served)
		for range 2 {
			c, err := originSess.AcceptStream(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			h, err := tunnel.ReadHeader(c)
			names = append(names, h.ServerName)
			first := make([]byte, len(hello))
			io.ReadFull(c, first)
			if err != nil || h.ServerName != "" {
				// As an origin refuses: the FIN keeps the reply
				// readable, where a Close alone would reset it away.
				tunnel.WriteReply(c, tunnel.ReplyBadHeader)
				c.CloseWrite()
				c.Close()
				continue
			}
			tunnel.WriteReply(c, tunnel.ReplyOK)
			c.Write(first)
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	st, err := tun.Send(ctx, Request{Route: "media", ServerName: "mmg.whatsapp.net", First: hello})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(hello))
	if _, err := io.ReadFull(st, got); err != nil || !bytes.Equal(got, hello) {
		t.Errorf("echo %x, %v", got, err)
	}
	st.Close()
	<-served
	if want := []string{"mmg.whatsapp.net", ""}; !slices.Equal(names, want) {
		t.Errorf("the origin read names %q, want %q", names, want)
	}
}
