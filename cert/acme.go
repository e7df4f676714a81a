package cert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// LetsEncrypt is the ACME.CA that names Let's Encrypt's production
// directory.
const LetsEncrypt = "letsencrypt"

// acmeTLS1 is the ALPN protocol of the TLS-ALPN-01 challenge (RFC 8737):
// the CA's hello offers it alone, with the identifier as SNI (for an IP
// literal its reverse name, RFC 8738: 4.3.2.1.in-addr.arpa for 1.2.3.4).
const acmeTLS1 = "acme-tls/1"

// shortlived is Let's Encrypt's profile of certificates valid for about 6
// days, the only one under which it issues certificates for IP addresses.
const shortlived = "shortlived"

// ACME is where and how certificates are obtained, from a CA that speaks
// ACME (RFC 8555), by github.com/caddyserver/certmagic: one certificate per
// host, each proved by an HTTP-01 or a TLS-ALPN-01 challenge answered on
// the edge's own listeners, and renewed in the background.
type ACME struct {
	// CA is LetsEncrypt (Let's Encrypt's production directory) or the URL
	// of an ACME directory. Required.
	CA string
	// Dir is where certificates, their keys and the ACME account are kept
	// (certmagic's FileStorage), so that a restart reuses them. Required.
	Dir string
	// Email is the account's contact; empty registers an account without
	// one.
	Email string
	// CARoot is the path of a PEM file of root certificates to trust, besides
	// the system's, for the CA's directory (a private CA, Pebble); empty
	// trusts the system's alone.
	CARoot string
	// Hosts are the names and IP literals to get certificates for, one
	// each. Required. Hosts[0] is served to a ClientHello whose SNI is not
	// one of Hosts, and to one without SNI, unless that client connected to
	// an address that is one of Hosts: then it gets that IP's certificate.
	Hosts []string
	// HTTPPort and TLSPort are the ports the edge's own listeners answer
	// HTTP-01 (HTTPChallenge) and TLS-ALPN-01 (GetCertificate) on; zero
	// means 80 and 443. certmagic finds them in use and leaves them to the
	// edge, so the edge must listen before it calls Start: on a port it
	// finds free, certmagic would listen itself while a challenge lasts.
	HTTPPort, TLSPort int
	// Log receives ferry's lines about certificates: obtained, renewed,
	// failed with the cause. nil logs nothing. certmagic's own log, which
	// names clients' addresses, is discarded.
	Log *slog.Logger

	// For tests: prove control by one challenge type alone.
	disableHTTP, disableTLSALPN bool
}

// Manager serves the certificates an ACME obtains and answers the CA's
// challenges. Its methods are safe for concurrent use.
type Manager struct {
	cfg      *certmagic.Config     // looks certificates up for handshakes; manages the names
	http     *certmagic.ACMEIssuer // answers HTTP-01
	hosts    map[string]bool
	fallback *tls.Certificate
	log      *slog.Logger
	done     chan struct{} // closed once the cache has stopped, after ctx ended
}

// Start begins obtaining and renewing certificates for a.Hosts in the
// background, until ctx ends; it never waits for the CA. Until a host has
// a certificate, and once one has expired, GetCertificate serves fallback.
//
// A certificate is loaded from a.Dir if one is there, else obtained; a
// failed attempt is logged (Warn, with its cause) and retried by
// certmagic: an obtain after 1, 2, 2, 5, 10... minutes, the intervals
// growing to 6 hours, for up to 30 days (then not again until a restart;
// from Let's Encrypt, a retry first tries its staging CA); a renewal,
// which begins once two thirds of a certificate's life have passed (or
// when the CA's renewal information says), at the cache's check every 10
// minutes, on the same backoff, while the old certificate keeps serving.
//
// IP literals in Hosts get certificates under Let's Encrypt's
// "shortlived" profile when a.CA is Let's Encrypt. From another CA they
// are requested under that profile if its directory offers it, else
// without a profile.
func (a ACME) Start(ctx context.Context, fallback tls.Certificate) (*Manager, error) {
	ca, err := a.directory()
	if err != nil {
		return nil, err
	}
	if a.Dir == "" {
		return nil, errors.New("acme: Dir is empty")
	}
	var names, ips []string
	hosts := map[string]bool{}
	for _, h := range a.Hosts {
		h, isIP, err := normalHost(h)
		if err != nil {
			return nil, err
		}
		if hosts[h] {
			continue
		}
		hosts[h] = true
		if isIP {
			ips = append(ips, h)
		} else {
			names = append(names, h)
		}
	}
	if len(hosts) == 0 {
		return nil, errors.New("acme: Hosts is empty")
	}
	first, _, _ := normalHost(a.Hosts[0])
	roots, err := a.roots()
	if err != nil {
		return nil, err
	}
	m := &Manager{hosts: hosts, fallback: &fallback, log: a.Log, done: make(chan struct{})}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}

	// The cache asks which configuration manages a certificate when it
	// renews one; the configurations need the cache first, so it waits
	// for them on ready.
	var nameCfg, ipCfg *certmagic.Config
	ready := make(chan struct{})
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(c certmagic.Certificate) (*certmagic.Config, error) {
			<-ready
			if ipCfg != nil && slices.ContainsFunc(c.Names, certmagic.SubjectIsIP) {
				return ipCfg, nil
			}
			return nameCfg, nil
		},
		Logger: zap.NewNop(),
	})
	base := certmagic.Config{
		Storage:            &certmagic.FileStorage{Path: a.Dir},
		DefaultServerName:  first,
		FallbackServerName: first,
		// Let's Encrypt has ended OCSP; stapling would only put the
		// network in the way of loading a certificate.
		OCSP:           certmagic.OCSPConfig{DisableStapling: true},
		OnEvent:        m.onEvent,
		ShouldEmitFunc: logged,
		Logger:         zap.NewNop(),
	}
	issuer := certmagic.ACMEIssuer{
		CA:                      ca,
		Email:                   a.Email,
		Agreed:                  true,
		TrustedRoots:            roots,
		AltHTTPPort:             a.HTTPPort,
		AltTLSALPNPort:          a.TLSPort,
		DisableHTTPChallenge:    a.disableHTTP,
		DisableTLSALPNChallenge: a.disableTLSALPN,
		Logger:                  zap.NewNop(),
	}
	nameCfg = certmagic.New(cache, base)
	m.http = certmagic.NewACMEIssuer(nameCfg, issuer)
	nameCfg.Issuers = []certmagic.Issuer{m.http}
	if len(ips) > 0 {
		ipCfg = certmagic.New(cache, base)
		ipCfg.Issuers = ipIssuers(ipCfg, issuer)
	}
	m.cfg = nameCfg
	close(ready)

	err = manage(ctx, nameCfg, names)
	if err == nil {
		err = manage(ctx, ipCfg, ips)
	}
	if err != nil {
		cache.Stop()
		return nil, err
	}
	go func() {
		<-ctx.Done()
		// Stop waits for the cache's maintenance goroutine, and ends the
		// renewals it started; the obtains ManageAsync started end with
		// ctx.
		cache.Stop()
		close(m.done)
	}()
	return m, nil
}

// ipIssuers returns the issuers of IP certificates from iss's CA: Let's
// Encrypt's under its "shortlived" profile; another's under that profile
// if its directory offers it, else without a profile. (acmez refuses,
// before it orders, a profile the directory does not offer, and certmagic
// then tries the next issuer; so does it if the CA refuses the order.)
func ipIssuers(cfg *certmagic.Config, iss certmagic.ACMEIssuer) []certmagic.Issuer {
	profiled := iss
	profiled.Profile = shortlived
	issuers := []certmagic.Issuer{certmagic.NewACMEIssuer(cfg, profiled)}
	if !letsEncrypt(iss.CA) {
		issuers = append(issuers, certmagic.NewACMEIssuer(cfg, iss))
	}
	return issuers
}

// manage has cfg manage hosts, if any.
func manage(ctx context.Context, cfg *certmagic.Config, hosts []string) error {
	if len(hosts) == 0 {
		return nil
	}
	if err := cfg.ManageAsync(ctx, hosts); err != nil {
		return fmt.Errorf("acme: manage %v: %w", hosts, err)
	}
	return nil
}

// GetCertificate is for tls.Config: for a hello that offers "acme-tls/1",
// the certificate of the TLS-ALPN-01 challenge for its SNI, or an error if
// no such challenge is under way; for any other, the certificate of the
// hello's SNI if it is one of the hosts, else of Hosts[0] (see
// ACME.Hosts for a hello without SNI), or the fallback while there is
// none or it has expired. It never waits for the network.
//
// The handshake of a challenge must also answer "acme-tls/1" by ALPN:
// the edge's GetConfigForClient must return a configuration whose
// NextProtos is ["acme-tls/1"] for such hellos, and leave other hellos'
// ALPN alone. The tls.Config must have no Certificates: crypto/tls would
// serve Certificates[0] to a hello without SNI rather than ask.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if slices.Contains(hello.SupportedProtos, acmeTLS1) {
		// certmagic knows a challenge only by a hello that offers
		// acme-tls/1 alone, as the CA's does.
		h := *hello
		h.SupportedProtos = []string{acmeTLS1}
		if h.ServerName == "" {
			return nil, errors.New("acme: TLS-ALPN-01 hello without SNI")
		}
		return m.cfg.GetCertificate(&h)
	}
	c, err := m.cfg.GetCertificate(hello)
	if err != nil || c == nil || len(c.Certificate) == 0 || c.Leaf == nil || time.Now().After(c.Leaf.NotAfter) {
		return m.fallback, nil
	}
	return c, nil
}

// HTTPChallenge answers an HTTP-01 challenge request
// (/.well-known/acme-challenge/TOKEN) for one of the hosts whose challenge
// is under way, and reports whether it did; if not, it has written nothing.
// The edge calls it first on every request to its HTTP port.
func (m *Manager) HTTPChallenge(w http.ResponseWriter, r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
		return false
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if h, _, err := normalHost(host); err != nil || !m.hosts[h] {
		return false
	}
	return m.http.HandleHTTPChallenge(w, r)
}

// logged reports whether onEvent logs an event, so that certmagic builds
// no others (it would describe every handshake).
func logged(event string) bool {
	switch event {
	case "cert_obtaining", "cert_obtained", "cert_failed", "cached_managed_cert":
		return true
	}
	return false
}

// onEvent logs certmagic's events about certificates. Their data name
// hosts, issuers and errors, never a client. ctx is the attempt's: a
// failure once it has ended is only the stop, and not logged.
func (m *Manager) onEvent(ctx context.Context, event string, data map[string]any) error {
	host, _ := data["identifier"].(string)
	renewal, _ := data["renewal"].(bool)
	switch event {
	case "cert_obtaining":
		m.log.Info("acme: requesting a certificate", "host", host, "renewal", renewal)
	case "cert_obtained":
		m.log.Info("acme: certificate issued", "host", host, "renewal", renewal, "issuer", data["issuer"])
	case "cert_failed":
		if ctx.Err() != nil {
			return nil
		}
		m.log.Warn("acme: certificate not issued; will retry with backoff", "host", host, "renewal", renewal, "err", data["error"])
	case "cached_managed_cert":
		m.log.Info("acme: certificate in service", "hosts", data["sans"])
	}
	return nil
}

// directory returns the URL of a's CA directory.
func (a ACME) directory() (string, error) {
	switch a.CA {
	case "":
		return "", errors.New("acme: CA is empty")
	case LetsEncrypt:
		return certmagic.LetsEncryptProductionCA, nil
	}
	if !strings.HasPrefix(a.CA, "https://") {
		return "", fmt.Errorf("acme: CA %q is neither %q nor an https:// URL", a.CA, LetsEncrypt)
	}
	return a.CA, nil
}

// letsEncrypt reports whether directory is one of Let's Encrypt's.
func letsEncrypt(directory string) bool {
	return directory == certmagic.LetsEncryptProductionCA || directory == certmagic.LetsEncryptStagingCA
}

// roots returns the system's roots and a.CARoot's, or nil (the system's
// alone) when CARoot is empty.
func (a ACME) roots() (*x509.CertPool, error) {
	if a.CARoot == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(a.CARoot)
	if err != nil {
		return nil, fmt.Errorf("acme: CARoot: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("acme: CARoot %s holds no PEM certificate", a.CARoot)
	}
	return pool, nil
}

// normalHost returns h as certmagic names it (lower case; an IP in its
// canonical form, without brackets) and whether it is an IP.
func normalHost(h string) (string, bool, error) {
	h = strings.ToLower(strings.TrimSpace(h))
	if ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); err == nil {
		return ip.Unmap().String(), true, nil
	}
	if !certmagic.SubjectQualifiesForCert(h) || strings.Contains(h, "*") {
		return "", false, fmt.Errorf("acme: host %q is neither a name nor an IP", h)
	}
	return h, false, nil
}
