package main

import (
	"crypto/tls"
	"testing"

	"ferry/cert"
	"ferry/config"
)

func TestCertExpiry(t *testing.T) {
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	want := crt.Leaf.NotAfter
	c := config.Clients{PublicHost: config.Hosts{"proxy.example.com"}}
	if got := certExpiry(&tls.Config{Certificates: []tls.Certificate{crt}}, c)(); !got.Equal(want) {
		t.Errorf("from a file: %v, want %v", got, want)
	}
	noLeaf := crt
	noLeaf.Leaf = nil
	var asked string
	acme := &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		asked = h.ServerName
		return &noLeaf, nil
	}}
	if got := certExpiry(acme, c)(); !got.Equal(want) || asked != "proxy.example.com" {
		t.Errorf("from ACME: %v for %q, want %v for proxy.example.com", got, asked, want)
	}
	if got := certExpiry(&tls.Config{}, c)(); !got.IsZero() {
		t.Errorf("no certificate: %v, want the zero time", got)
	}
	if h := alertHost(c); h != "proxy.example.com" {
		t.Errorf("alert host %q", h)
	}
}
