package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"ferry/cert"
	"ferry/tunnel"
)

// TestTunnelCertificatesApart checks that self-signed wss and quic
// listeners each serve a certificate of their own, and that the operator's
// certificate files serve them all.
func TestTunnelCertificatesApart(t *testing.T) {
	end := tunnel.End{Origin: true, Secret: secret, Log: slog.New(slog.DiscardHandler)}
	urls := []tunnel.URL{
		{Scheme: "wss", Host: "127.0.0.1:0", Path: "/t"},
		{Scheme: "quic", Host: "127.0.0.1:0"},
		{Scheme: "wss", Host: "127.0.0.1:0", Path: "/u"},
	}
	served := func(certFile, keyFile string) [][]byte {
		lns, err := listenTunnels(urls, "FERRY_ORIGIN_LISTEN", "FERRY_ORIGIN_TLS_CERT", certFile, keyFile, nil, end)
		if err != nil {
			t.Fatal(err)
		}
		defer closeAll(lns)
		var certs [][]byte
		for _, ln := range lns {
			certs = append(certs, servedCert(t, ln))
		}
		return certs
	}

	self := served("", "")
	for i := range self {
		for j := range i {
			if bytes.Equal(self[i], self[j]) {
				t.Errorf("self-signed listeners %d and %d serve one certificate", j, i)
			}
		}
	}

	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	key, err := x509.MarshalPKCS8PrivateKey(crt.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: crt.Certificate[0]}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
	for i, c := range served(certFile, keyFile) {
		if !bytes.Equal(c, crt.Certificate[0]) {
			t.Errorf("listener %d does not serve the operator's certificate", i)
		}
	}
}

// servedCert returns the DER of the certificate ln serves.
func servedCert(t *testing.T, ln tunnel.Listener) []byte {
	t.Helper()
	addr := ln.Addr().String()
	if _, ok := ln.(*tunnel.QUICListener); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := quic.DialAddr(ctx, addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{tunnel.ALPN}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseWithError(0, "")
		return conn.ConnectionState().TLS.PeerCertificates[0].Raw
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw
}
