package main

import (
	"crypto/tls"
	"log/slog"
	"testing"

	"ferry/cert"
	"ferry/config"
	"ferry/metrics"
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

// The wiring: the detector's gauge is registered, its goroutines (the
// webhook's too) end with stop, and the certificate's expiry is published
// only for a certificate the operator must renew.
func TestStartBlockAlerts(t *testing.T) {
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	site := &edgeSite{tls: &tls.Config{Certificates: []tls.Certificate{crt}}}
	var hook config.Webhook
	if err := hook.Decode("https://hooks.example.com/x"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []config.Clients{{}, {TLSCert: "/etc/ferry/cert.pem"}} {
		m := metrics.New("edge", "test")
		stop := startBlockAlerts(t.Context(), "edge", config.Common{AlertWebhook: hook}, c, site, m, slog.New(slog.DiscardHandler))
		m.Listener(":443", "chat").Accepted()
		mfs, err := m.Registry.Gather()
		stop()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			if g := mf.GetMetric()[0].GetGauge(); g != nil {
				got[mf.GetName()] = g.GetValue()
			}
		}
		if v, ok := got["ferry_edge_block_suspected"]; !ok || v != 0 {
			t.Errorf("ferry_edge_block_suspected %v, %v", v, ok)
		}
		v, ok := got["ferry_certificate_expiry_timestamp_seconds"]
		if want := float64(crt.Leaf.NotAfter.Unix()); c.TLSCert != "" && v != want || c.TLSCert == "" && ok {
			t.Errorf("TLSCert %q: expiry %v (%v), want %v only with a file", c.TLSCert, v, ok, want)
		}
	}
}
