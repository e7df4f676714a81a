package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"ferry/internal/fake"
	"ferry/internal/logcheck"
	"ferry/tunnel"
)

// What no line of a ferry process's log may hold, at any level: the
// secret, a URL's password, and the address the tests' clients (and
// strangers) dial from. Servers listen on 127.0.0.1, clients come from
// clientIP, so that a client's address is told from a listener's.
const (
	clientIP    = "127.0.0.2"
	urlPassword = "url-password-never-logged-5531"
)

// logs notes the log lines of every process the tests started that hold
// something forbidden; TestMain fails the run if there is any.
var logs = &logcheck.Checker{Forbidden: []string{secret, urlPassword, clientIP}}

// clientDialer dials from clientIP.
var clientDialer = &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP)}, Timeout: 10 * time.Second}

// TestLogsHideSecrets runs an edge and an origin at debug level with a
// decoy URL holding a password, relays clients that end abruptly, and has
// strangers knock at every kind of tunnel listener (a bad token, a TLS
// handshake that fails, a QUIC connection without a hello), and checks
// that no line of either log holds the secret, the password or the
// address clients and strangers come from.
func TestLogsHideSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := build(t)
	echo := fake.Start(t, fake.Echo)
	wsAddr, wssAddr, quicAddr, edgeAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	decoyURL := "http://admin:" + urlPassword + "@127.0.0.1:1/?token=" + urlPassword
	common := []string{"FERRY_SECRET=" + secret, "FERRY_ADMIN=", "FERRY_LOG_LEVEL=debug"}
	org := start(t, bin, append(common,
		"FERRY_ORIGIN_LISTEN=ws://"+wsAddr+"/t,wss://"+wssAddr+"/t,quic://"+quicAddr,
		"FERRY_ORIGIN_TARGETS=chat="+echo.Addr(), "FERRY_ORIGIN_PROXY_PROTOCOL=v1", "FERRY_ORIGIN_DECOY="+decoyURL), "", "origin")
	if line := org.waitFor(t, "ferry origin starting"); !strings.Contains(line, "admin:xxxxx@127.0.0.1:1") {
		t.Errorf("the start line does not show the decoy's URL masked: %s", line)
	}
	edg := start(t, bin, append(common, "FERRY_EDGE_LISTEN=tcp://"+edgeAddr+"/chat", "FERRY_EDGE_ORIGINS=ws://"+wsAddr+"/t"), "", "edge")
	edg.waitFor(t, "tunnel up")

	// Clients: one relayed and reset, one that sends nothing.
	for _, reset := range []bool{true, false} {
		c, err := clientDialer.Dial("tcp", edgeAddr)
		if err != nil {
			t.Fatal(err)
		}
		if reset {
			msg := "\x00\x01hello"
			io.WriteString(c, msg)
			io.ReadFull(c, make([]byte, 1))
			c.(*net.TCPConn).SetLinger(0)
		}
		c.Close()
	}

	// Strangers at the tunnel listeners.
	hc := &http.Client{Transport: &http.Transport{DialContext: clientDialer.DialContext}}
	req, _ := http.NewRequest("GET", "http://"+wsAddr+"/t", nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Cookie", tunnel.TokenCookie+"=not-a-token")
	if resp, err := hc.Do(req); err == nil {
		resp.Body.Close()
	}
	hc.CloseIdleConnections()
	if c, err := clientDialer.Dial("tcp", wssAddr); err == nil {
		io.WriteString(c, "\x16\x03\x01\x00\x05hello") // not a ClientHello
		io.ReadAll(c)
		c.Close()
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(clientIP)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: pc}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	udpAddr, _ := net.ResolveUDPAddr("udp", quicAddr)
	defer cancel()
	conn, err := tr.Dial(ctx, udpAddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{tunnel.ALPN}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A bad hello: the origin logs its refusal, then closes the connection.
	if st, err := conn.OpenStreamSync(ctx); err == nil {
		st.Write(make([]byte, 64))
	}
	select {
	case <-conn.Context().Done():
	case <-ctx.Done():
		t.Error("the origin did not refuse a bad QUIC hello")
	}
	conn.CloseWithError(0, "")
	tr.Close()
	pc.Close()

	for _, p := range []*proc{edg, org} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		for range p.lines {
		}
		p.cmd.Wait()
	}
	for _, line := range logs.Lines() {
		t.Error(line)
	}
}
