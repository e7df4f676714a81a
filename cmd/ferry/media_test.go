package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ferry/internal/fake"
	"ferry/tunnel"
)

// The media test runs edge and origin in a network namespace of its own:
// `ip netns exec` gives the namespace its own /etc/hosts, in which
// WhatsApp's media servers are this namespace's loopback, so that the
// origin dials the server names that phones send, as in production, and
// nothing can leave the namespace. The test binary runs itself inside it
// (inNamespace).

var mediaNames = []string{"mmg.whatsapp.net", "media-ams2-1.cdn.whatsapp.net", "whatsapp.net"}

func TestMediaBySNI(t *testing.T) {
	inNamespace(t, "TestMediaBySNI", mediaInNamespace, func(name string) {
		etc := filepath.Join("/etc/netns", name)
		if err := os.MkdirAll(etc, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(etc) })
		hosts := "127.0.0.1 localhost\n127.0.0.1 " + strings.Join(mediaNames, " ") + "\n"
		os.WriteFile(filepath.Join(etc, "hosts"), []byte(hosts), 0o644)
		// Any other name fails at once: no resolver answers in the namespace.
		os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver 127.0.0.1\n"), 0o644)
	})
}

// mediaInNamespace runs inside the namespace: an origin that sends PROXY v1
// headers, an edge with a chat, a media and a tls listener, a chat server
// that records what it receives, and a media server with a certificate for
// WhatsApp's media names.
func mediaInNamespace(t *testing.T) {
	bin := os.Getenv(netnsBin)
	chatFirst := make(chan string, 10)
	chat := fake.Start(t, func(c net.Conn) {
		line, _ := bufio.NewReader(c).ReadString('\n')
		if line != "" { // not the origin's probe, which sends nothing
			chatFirst <- line
		}
	})
	mediaCert := certFor(t, "*.whatsapp.net", "whatsapp.net", "*.cdn.whatsapp.net")
	var mediaDials atomic.Int64
	mediaFirst := make(chan byte, 10)
	media := fake.Start(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		b, err := br.Peek(1)
		if err != nil {
			return // the origin's probe, which sends nothing
		}
		mediaDials.Add(1)
		mediaFirst <- b[0]
		tc := tls.Server(&peekedConn{c, br}, &tls.Config{Certificates: []tls.Certificate{mediaCert}})
		if tc.Handshake() == nil {
			io.Copy(tc, tc)
		}
	})
	_, mediaPort, _ := net.SplitHostPort(media.Addr())

	originAddr, chatAddr, mediaAddr, tlsAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	common := []string{"FERRY_SECRET=" + secret, "FERRY_ADMIN="}
	start(t, bin, append(common, "FERRY_ORIGIN_LISTEN=ws://"+originAddr+"/t", "FERRY_ORIGIN_PROXY_PROTOCOL=v1",
		"FERRY_ORIGIN_TARGETS=chat="+chat.Addr()+",media=*.whatsapp.net:"+mediaPort+"|whatsapp.net:"+mediaPort),
		"ferry origin starting", "origin")
	edg := start(t, bin, append(common, "FERRY_EDGE_ORIGINS=ws://"+originAddr+"/t",
		"FERRY_EDGE_LISTEN=tcp://"+chatAddr+"/chat,tcp://"+mediaAddr+"/media,tls://"+tlsAddr+"/chat"),
		"ferry edge starting", "edge")
	edg.waitFor(t, "tunnel up")

	// Chat gets the PROXY line, then the opening.
	c, err := net.Dial("tcp", chatAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write(fake.OpeningWeb)
	if line := <-chatFirst; !strings.HasPrefix(line, "PROXY TCP4 127.0.0.1 ") {
		t.Errorf("chat target got %q first, want a PROXY v1 line", line)
	}
	c.Close()

	// Media, on the media and the tls listener, reaches the server the name
	// names, with a clean ClientHello, and the phone sees its certificate.
	for _, addr := range []string{mediaAddr, tlsAddr} {
		for _, sni := range mediaNames[:2] {
			leaf := tlsLeaf(t, addr, sni)
			if !bytes.Equal(leaf, mediaCert.Leaf.Raw) {
				t.Errorf("%s %s: the phone did not get the media server's certificate", addr, sni)
			}
			if b := <-mediaFirst; b != 0x16 {
				t.Errorf("%s %s: the media server got %#x first, want a ClientHello's 0x16 (no PROXY header)", addr, sni, b)
			}
		}
		// Any other name gets the edge's own certificate.
		for _, sni := range []string{"example.com", ""} {
			if leaf := tlsLeaf(t, addr, sni); bytes.Equal(leaf, mediaCert.Leaf.Raw) {
				t.Errorf("%s %q: passed through to the media server", addr, sni)
			}
		}
	}
	if n := mediaDials.Load(); n != 4 {
		t.Errorf("%d media dials, want 4", n)
	}

	// An edge that forges a header asking for another name is refused by
	// the origin, which dials nothing.
	// The same URL as the edge's FERRY_EDGE_ORIGINS, dialled as it does.
	u, err := tunnel.ParseURL("ws://" + originAddr + "/t")
	if err != nil {
		t.Fatal(err)
	}
	d, err := tunnel.NewDialer(u, tunnel.End{Secret: secret, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := d.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	for _, name := range []string{"evil.example.com", "whatsapp.net.evil.example"} {
		st, err := tunnel.Open(ctx, sess, tunnel.Header{Route: "media", ServerName: name, Client: netip.MustParseAddrPort("198.51.100.7:4000")})
		if err != nil {
			t.Fatal(err)
		}
		err = st.AwaitReply()
		var r tunnel.Reply
		if !errors.As(err, &r) || r != tunnel.ReplyNotAllowed {
			t.Errorf("forged name %s: %v, want the origin's refusal", name, err)
		}
		st.Close()
	}
	if n := mediaDials.Load(); n != 4 {
		t.Errorf("the forged names were dialled: %d media dials", n)
	}
}

// tlsLeaf completes a TLS handshake with addr for sni and returns the
// certificate the server showed.
func tlsLeaf(t *testing.T, addr, sni string) []byte {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("%s %q: %v", addr, sni, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw
}

// peekedConn reads through the bufio.Reader that peeked at it.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// certFor makes a self-signed certificate for names.
func certFor(t *testing.T, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}
