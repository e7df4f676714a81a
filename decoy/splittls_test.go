package decoy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"ferry/cert"
)

// TestSplitTLS: a connection that chose h2 comes out of the HTTP/2
// listener as the *tls.Conn, one that chose http/1.1 (or nothing) out of
// the HTTP/1.1 listener with its TLS state, plain HTTP to the port gets
// nginx's answer, and closing ends a handshake in progress.
func TestSplitTLS(t *testing.T) {
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h1, h2 := SplitTLS(ln, &tls.Config{Certificates: []tls.Certificate{crt}, NextProtos: []string{"h2", "http/1.1"}})
	addr := ln.Addr().String()
	dial := func(alpn ...string) *tls.Conn {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: alpn})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial("h2")
	c, err := h2.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if tc, ok := c.(*tls.Conn); !ok || tc.ConnectionState().NegotiatedProtocol != "h2" {
		t.Errorf("out of the HTTP/2 listener: %T, want a *tls.Conn that chose h2", c)
	}
	c.Close()
	for _, alpn := range [][]string{{"http/1.1"}, nil} {
		dial(alpn...)
		c, err := h1.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.(*tls.Conn); ok {
			t.Errorf("ALPN %q: a *tls.Conn out of the HTTP/1.1 listener, which net/http would answer in Go's words", alpn)
		}
		if st, ok := c.(interface{ ConnectionState() tls.ConnectionState }); !ok || !st.ConnectionState().HandshakeComplete {
			t.Errorf("ALPN %q: no TLS state for net/http to read", alpn)
		}
		c.Close()
	}

	plain, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(plain, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(plain), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Server") != "nginx" || string(body) != string(errorPage(http.StatusBadRequest, detailPlainToHTTPS)) {
		t.Errorf("plain HTTP to the TLS port: %s %v %q", resp.Status, resp.Header, body)
	}

	// A client that sends nothing is in its handshake until Close.
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	h1.Close()
	silent.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Error("a connection in its handshake outlived the listener")
	}
	if _, err := h2.Accept(); err == nil {
		t.Error("the HTTP/2 listener accepts after Close")
	}
}
