package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"ferry/alert"
	"ferry/config"
	"ferry/metrics"
	"ferry/upstream"
)

// startBlockAlerts has the block detector of an edge or standalone (role)
// count the clients m's listeners accept, publishes
// ferry_edge_block_suspected, and, with FERRY_ALERT_WEBHOOK, posts each
// change of the suspicion; it publishes the expiry of site's certificate
// too. It must run before the listeners' counters are made
// (edge.Server.Run). stop ends its goroutines and waits for them.
func startBlockAlerts(ctx context.Context, role string, cc config.Common, c config.Clients, site *edgeSite, m *metrics.Metrics, log *slog.Logger) (stop func()) {
	if c.TLSCert != "" || c.ACME != "" {
		// Only the certificates an operator must renew: the self-signed
		// one is made anew at each start.
		m.CertificateExpiry(certExpiry(site.tls, c))
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	d := &alert.Detector{Log: log}
	if u := cc.AlertWebhook.URL; u != nil {
		n := alert.NewNotifier(alert.Notifier{URL: u, Role: role, Host: alertHost(c), Client: &http.Client{}, Log: log})
		d.OnChange = n.Notify
		wg.Go(func() { n.Run(ctx) })
	}
	m.NewClients(d.Add)
	m.BlockSuspected(d.Suspected)
	wg.Go(func() { d.Run(ctx) })
	return func() { cancel(); wg.Wait() }
}

// startRouteAlerts posts, with FERRY_ALERT_WEBHOOK, each route of up (an
// origin's or a standalone's, role) that goes down or comes back, until
// ctx ends or the returned stop is called.
func startRouteAlerts(ctx context.Context, role string, cc config.Common, host string, up *upstream.Dialer, log *slog.Logger) (stop func()) {
	u := cc.AlertWebhook.URL
	if u == nil {
		return func() {}
	}
	n := alert.NewNotifier(alert.Notifier{URL: u, Role: role, Host: host, Client: &http.Client{}, Log: log})
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { n.Run(ctx) })
	wg.Go(func() {
		down := map[string]bool{}
		for {
			changed := up.Changed()
			now := map[string]bool{}
			for _, d := range up.Unreachable() {
				now[d.Route] = true
				if !down[d.Route] {
					n.NotifyRoute(d.Route, d.Since, d.Cause)
				}
			}
			for route := range down {
				if !now[route] {
					n.NotifyRoute(route, time.Time{}, nil)
				}
			}
			down = now
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// alertHost names the edge in its alerts: the name phones use, else the
// machine's.
func alertHost(c config.Clients) string {
	if len(c.PublicHost) > 0 {
		return c.PublicHost[0]
	}
	h, _ := os.Hostname()
	return h
}

// certExpiry returns when the certificate conf serves to the edge's public
// host expires, for ferry_certificate_expiry_timestamp_seconds: the
// operator's file's, or ACME's (asked each time: it renews). The zero time
// while there is none.
func certExpiry(conf *tls.Config, c config.Clients) func() time.Time {
	return func() time.Time {
		var crt *tls.Certificate
		switch {
		case conf.GetCertificate != nil:
			name := ""
			if len(c.PublicHost) > 0 {
				name = c.PublicHost[0]
			}
			crt, _ = conf.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		case len(conf.Certificates) > 0:
			crt = &conf.Certificates[0]
		}
		if crt == nil || len(crt.Certificate) == 0 {
			return time.Time{}
		}
		leaf := crt.Leaf
		if leaf == nil {
			var err error
			if leaf, err = x509.ParseCertificate(crt.Certificate[0]); err != nil {
				return time.Time{}
			}
		}
		return leaf.NotAfter
	}
}
