package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"ferry/admin"
	"ferry/cert"
	"ferry/config"
	"ferry/decoy"
	"ferry/edge"
	"ferry/link"
	"ferry/memlimit"
	"ferry/metrics"
	"ferry/origin"
	"ferry/pool"
	"ferry/tunnel"
	"ferry/upstream"
)

func runEdge(ctx context.Context, logw io.Writer) error {
	var cfg config.Edge
	if err := config.Load(&cfg); err != nil {
		return err
	}
	log := newLogger(cfg.Common, logw)
	defer setMemoryLimit(ctx, cfg.Common, log)()
	m := metrics.New("edge", versionString())
	end := tunnel.End{Secret: string(cfg.Secret), LogClientIPs: bool(cfg.LogClientIPs), Log: log}
	origins, err := tunnelPeers(cfg.Origins, "FERRY_EDGE_ORIGINS", end)
	if err != nil {
		return err
	}
	tunnels := &edge.Tunnels{Pool: pool.Pool{Peers: origins, Size: int(cfg.Pool), Metrics: m, Log: log}}
	adviseUDP(log, append(cfg.Origins, cfg.TunnelListen...))
	// The client listeners first: ACME answers its challenges on them.
	lns, err := listenClients(cfg.Clients)
	if err != nil {
		return err
	}
	site, err := newSite(ctx, cfg.Clients, config.ReadInstall("edge", cfg.Secret), log)
	if err != nil {
		closeAll(lns)
		return err
	}
	tunnels.Listeners, err = listenTunnels(cfg.TunnelListen, "FERRY_EDGE_TUNNEL_LISTEN", "FERRY_EDGE_TLS_CERT", cfg.TLSCert, cfg.TLSKey,
		site.handler, end)
	if err != nil {
		closeAll(lns)
		return err
	}
	tunnelMetrics(m, tunnels.Listeners)
	status := newClientStatus(ctx, lns, int(cfg.MaxConns), int(cfg.MaxConnsPerIP), tunnels, cfg.Origins, cfg.TunnelListen)
	stopAdmin, err := startAdmin(cfg.Common, &admin.Server{
		Role: "edge", Version: versionString(), Metrics: m, Link: shareLink(cfg.Clients), Log: log,
		Status: status.status, History: admin.NewHistory(status.phones, m, true),
		OriginNote: func() string { return originNote(tunnels) },
		Ready: readiness(ctx, func() error {
			if !tunnels.Up() {
				return errors.New("no tunnel session up")
			}
			if note := originNote(tunnels); note != "" {
				return errors.New(note)
			}
			return nil
		}),
	})
	if err != nil {
		closeAll(tunnels.Listeners)
		closeAll(lns)
		return err
	}
	defer stopAdmin()
	log.Info("ferry edge starting", "version", versionString(), slog.Group("config", config.Attrs(&cfg)...))

	defer startBlockAlerts(ctx, "edge", cfg.Common, cfg.Clients, site, m, log)()
	srv := newEdgeServer(cfg.Common, cfg.Clients, site, lns, tunnels.Send, m, log)
	status.serving(srv)
	err = edge.Serve(ctx, srv, tunnels)
	log.Info("ferry edge stopped")
	return err
}

func runStandalone(ctx context.Context, logw io.Writer) error {
	var cfg config.Standalone
	if err := config.Load(&cfg); err != nil {
		return err
	}
	log := newLogger(cfg.Common, logw)
	defer setMemoryLimit(ctx, cfg.Common, log)()
	m := metrics.New("standalone", versionString())
	lns, err := listenClients(cfg.Clients)
	if err != nil {
		return err
	}
	site, err := newSite(ctx, cfg.Clients, config.ReadInstall("standalone", ""), log)
	if err != nil {
		closeAll(lns)
		return err
	}
	up := &upstream.Dialer{Targets: cfg.Targets, ProxyProtocol: byte(cfg.ProxyProtocol), Metrics: m, Log: log}
	routeMetrics(m, up)
	status := newClientStatus(ctx, lns, int(cfg.MaxConns), int(cfg.MaxConnsPerIP), nil, nil, nil)
	stopAdmin, err := startAdmin(cfg.Common, &admin.Server{
		Role: "standalone", Version: versionString(), Metrics: m, Link: shareLink(cfg.Clients), Log: log,
		Status: status.status, History: admin.NewHistory(status.phones, m, true), Routes: routesStatus(up),
		Ready: readiness(ctx, func() error { return routesReady(up) }),
	})
	if err != nil {
		closeAll(lns)
		return err
	}
	defer stopAdmin()
	log.Info("ferry standalone starting", "version", versionString(), slog.Group("config", config.Attrs(&cfg)...))
	defer startBlockAlerts(ctx, "standalone", cfg.Common, cfg.Clients, site, m, log)()
	defer startRouteAlerts(ctx, "standalone", cfg.Common, alertHost(cfg.Clients), up, log)()
	defer watchRoutes(ctx, up)()
	srv := newEdgeServer(cfg.Common, cfg.Clients, site, lns, edge.Direct(up.Dial), m, log)
	status.serving(srv)
	err = srv.Run(ctx)
	log.Info("ferry standalone stopped")
	return err
}

func runOrigin(ctx context.Context, logw io.Writer) error {
	var cfg config.Origin
	if err := config.Load(&cfg); err != nil {
		return err
	}
	log := newLogger(cfg.Common, logw)
	defer setMemoryLimit(ctx, cfg.Common, log)()
	m := metrics.New("origin", versionString())
	end := tunnel.End{Origin: true, ClientAddress: cfg.Targets.SendsProxy(cfg.ProxyProtocol), Secret: string(cfg.Secret), LogClientIPs: bool(cfg.LogClientIPs), Log: log}
	edges, err := tunnelPeers(cfg.Edges, "FERRY_ORIGIN_EDGES", end)
	if err != nil {
		return err
	}
	srv := &origin.Server{
		Edges:    edges,
		Pool:     int(cfg.Pool),
		Grace:    grace(cfg.Common),
		Upstream: &upstream.Dialer{Targets: cfg.Targets, ProxyProtocol: byte(cfg.ProxyProtocol), Metrics: m, Log: log},
		Metrics:  m,
		// The addresses of stream headers, sent only for PROXY headers.
		LogClientIPs: bool(cfg.LogClientIPs),
		Log:          log,
	}
	adviseUDP(log, append(cfg.Listen, cfg.Edges...))
	srv.Listeners, err = listenTunnels(cfg.Listen, "FERRY_ORIGIN_LISTEN", "FERRY_ORIGIN_TLS_CERT", cfg.TLSCert, cfg.TLSKey,
		decoySite(cfg.Decoy, config.ReadInstall("origin", cfg.Secret)), end)
	if err != nil {
		return err
	}
	tunnelMetrics(m, srv.Listeners)
	m.Origin(func() float64 { return float64(srv.Stats().Sessions) },
		func() float64 { return float64(srv.Stats().EdgeDraining) },
		func() float64 { return float64(srv.Stats().Streams) })
	routeMetrics(m, srv.Upstream)
	status := newOriginStatus(ctx, srv, cfg.Listen, cfg.Edges)
	stopAdmin, err := startAdmin(cfg.Common, &admin.Server{
		Role: "origin", Version: versionString(), Metrics: m, Log: log,
		Status: status.status, History: admin.NewHistory(status.phones, m, false), Routes: routesStatus(srv.Upstream),
		Ready: readiness(ctx, func() error { return routesReady(srv.Upstream) }),
	})
	if err != nil {
		closeAll(srv.Listeners)
		return err
	}
	defer stopAdmin()
	log.Info("ferry origin starting", "version", versionString(), slog.Group("config", config.Attrs(&cfg)...))
	host, _ := os.Hostname()
	defer startRouteAlerts(ctx, "origin", cfg.Common, host, srv.Upstream, log)()
	err = srv.Run(ctx)
	log.Info("ferry origin stopped")
	return err
}

// setMemoryLimit sets the process's soft memory limit from
// FERRY_MEMORY_LIMIT (or the cgroup's or machine's memory), and hands
// memory back after bursts (memlimit.Release) until ctx ends or the
// returned stop is called.
func setMemoryLimit(ctx context.Context, c config.Common, log *slog.Logger) (stop func()) {
	n, source := memlimit.Apply(memlimit.Limit(c.MemoryLimit), "/")
	if n == 0 {
		log.Info("no memory limit", "source", source)
	} else {
		log.Info("memory limit", "mib", n>>20, "source", source)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		memlimit.Release(ctx)
		close(done)
	}()
	return func() {
		cancel()
		<-done
	}
}

// readiness is a process's: not while it drains (ctx has ended), and
// otherwise what more says, when set.
func readiness(ctx context.Context, more func() error) func() error {
	return func() error {
		if ctx.Err() != nil {
			return errors.New("draining")
		}
		if more != nil {
			return more()
		}
		return nil
	}
}

// routesReady says which of up's routes cannot reach WhatsApp, and why;
// nil when none.
func routesReady(up *upstream.Dialer) error {
	var errs []string
	for _, d := range up.Unreachable() {
		cause := strings.ReplaceAll(d.Cause.Error(), "\n", "; ")
		errs = append(errs, fmt.Sprintf("route %s cannot reach WhatsApp (every alternative failed for %s): %s",
			d.Route, time.Since(d.Since).Round(time.Second), cause))
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

// watchRoutes keeps up's routes' reachability (a standalone's: an origin's
// Server does it itself) until ctx ends or the returned stop is called.
func watchRoutes(ctx context.Context, up *upstream.Dialer) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		up.Watch(ctx)
		close(done)
	}()
	return func() {
		cancel()
		<-done
	}
}

// routeMetrics registers ferry_route_reachable for each of up's routes.
func routeMetrics(m *metrics.Metrics, up *upstream.Dialer) {
	for route := range up.Targets {
		m.RouteReachable(route, func() float64 {
			for _, d := range up.Unreachable() {
				if d.Route == route {
					return 0
				}
			}
			return 1
		})
	}
}

// startAdmin serves the admin endpoint of c, unless FERRY_ADMIN is empty,
// until the returned stop is called.
func startAdmin(c config.Common, a *admin.Server) (stop func(), err error) {
	if c.Admin == "" {
		return func() {}, nil
	}
	ln, err := listen(string(c.Admin), "FERRY_ADMIN")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Serve(ctx, ln); err != nil {
			a.Log.Error("admin endpoint failed", "err", err)
		}
	}()
	return func() {
		cancel()
		<-done
	}, nil
}

// shareLink is the edge's wa.me link when FERRY_EDGE_PUBLIC_HOST is set.
func shareLink(c config.Clients) string {
	if len(c.PublicHost) == 0 {
		return ""
	}
	return link.URL(c.PublicHost[0], link.PortsOf(c.Listen))
}

// tunnelMetrics registers the counters of tunnel listeners.
func tunnelMetrics(m *metrics.Metrics, lns []tunnel.Listener) {
	for _, l := range lns {
		switch l := l.(type) {
		case *tunnel.WSListener:
			m.TunnelListener(l.Addr().String(), func() float64 { return float64(l.AuthFailures.Load()) },
				func() float64 { return float64(l.DecoyHits.Load()) })
		case *tunnel.QUICListener:
			m.TunnelListener(l.Addr().String(), func() float64 { return float64(l.AuthFailures.Load()) }, nil)
		case *tunnel.DNSListener:
			// Its decoy is the ordinary answer to what is not a tunnel
			// query of a session it takes.
			m.TunnelListener(l.Addr().String(), func() float64 { return float64(l.AuthFailures.Load()) },
				func() float64 { return float64(l.Server().Ordinary.Load()) })
		}
	}
}

// tunnelPeers returns a peer, named by its URL (which holds no secret), for
// each URL of variable; a dns one listed after others is a fallback.
func tunnelPeers(urls []tunnel.URL, variable string, end tunnel.End) ([]pool.Peer, error) {
	var peers []pool.Peer
	other := false // a peer of another transport than dns listed so far
	for _, u := range urls {
		d, err := tunnel.NewDialer(u, end)
		if err != nil {
			return nil, &config.Error{Var: variable, Err: err}
		}
		// A dns peer after others is the last link, for shutdowns: dialled
		// only while none of them is up (pool/fallback.go).
		dns := u.Scheme == "dns"
		peers = append(peers, pool.Peer{Name: u.String(), Dialer: d, Fallback: dns && other})
		other = other || !dns
	}
	return peers, nil
}

// listenTunnels opens the tunnel listeners of variable. The wss and quic
// ones share the certificate of certFile and keyFile when they are set
// (loaded once, and only when some listener needs it, so that a bad
// certificate variable does not stop an origin that serves plain ws);
// otherwise each gets a self-signed one of its own, with a key of a common
// kind, so that nothing ties one listener's certificate to another's.
func listenTunnels(urls []tunnel.URL, variable, certVar, certFile, keyFile string, decoy http.Handler, end tunnel.End) ([]tunnel.Listener, error) {
	o := tunnel.ListenOptions{
		End:   end,
		Decoy: decoy,
		// One for all listeners: a token is accepted once, whichever
		// listener it is sent to.
		Verifier: tunnel.NewVerifier(end.Secret),
	}
	var own *tls.Certificate // the operator's, shared
	if certFile != "" || keyFile != "" {
		for _, u := range urls {
			if u.TLS() {
				c, err := cert.Load(certFile, keyFile)
				if err != nil {
					return nil, &config.Error{Var: certVar, Err: err}
				}
				own = &c
				break
			}
		}
	}
	var lns []tunnel.Listener
	for _, u := range urls {
		lo := o
		switch {
		case !u.TLS():
		case own != nil:
			lo.Certificate = own
		default:
			c, err := cert.SelfSignedWith(cert.CommonKeys...)
			if err != nil {
				closeAll(lns)
				return nil, fmt.Errorf("%s %s: %w", variable, u, err)
			}
			lo.Certificate = &c
		}
		ln, err := tunnel.Listen(u, lo)
		if err != nil {
			closeAll(lns)
			return nil, listenError(err, u.Host, variable)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// adviseUDP logs what to set when the kernel keeps UDP buffers too small
// for QUIC, if any of urls is a QUIC one.
func adviseUDP(log *slog.Logger, urls []tunnel.URL) {
	for _, u := range urls {
		if u.Scheme == "quic" {
			if advice := tunnel.UDPBufferAdvice(); advice != "" {
				log.Warn(advice)
			}
			return
		}
	}
}

func newEdgeServer(cc config.Common, c config.Clients, site *edgeSite, lns []edge.Listener, connect edge.ConnectFunc, m *metrics.Metrics, log *slog.Logger) *edge.Server {
	return &edge.Server{
		Listeners:        lns,
		Connect:          connect,
		TLS:              site.tls,
		Site:             site.handler,
		MediaNames:       c.MediaNames,
		MediaAfterChat:   bool(c.MediaAfterChat),
		MaxConns:         int(c.MaxConns),
		MaxConnsPerIP:    int(c.MaxConnsPerIP),
		ProxyFrom:        c.ProxyFrom,
		HandshakeTimeout: time.Duration(c.HandshakeTimeout),
		Grace:            grace(cc),
		Metrics:          m,
		LogClientIPs:     bool(cc.LogClientIPs),
		Log:              log,
	}
}

// grace is FERRY_GRACE as the servers take it: 0s closes at once.
func grace(c config.Common) time.Duration {
	if c.Grace == 0 {
		return -1
	}
	return time.Duration(c.Grace)
}

// edgeSite is what an edge (or standalone) shows and proves to clients: its
// certificates and its web site.
type edgeSite struct {
	tls     *tls.Config
	handler http.Handler
}

// decoySite is the web site d names; in makes the built-in page this
// host's own.
func decoySite(d config.Decoy, in config.Install) http.Handler {
	return decoy.New(decoy.Options{Target: d.URL, Dir: d.Dir, Seed: in.Seed, Installed: in.Since})
}

// newSite loads the edge's certificate (the operator's or a self-signed
// one), starts obtaining the CA's with FERRY_EDGE_ACME (the client
// listeners must be open: the challenges are answered on them), and makes
// its web site, FERRY_EDGE_DECOY.
func newSite(ctx context.Context, c config.Clients, in config.Install, log *slog.Logger) (*edgeSite, error) {
	crt, err := cert.Load(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, &config.Error{Var: "FERRY_EDGE_TLS_CERT", Err: err}
	}
	site := &edgeSite{
		tls:     &tls.Config{Certificates: []tls.Certificate{crt}, MinVersion: tls.VersionTLS12},
		handler: decoySite(c.Decoy, in),
	}
	if c.ACME == "" {
		return site, nil
	}
	// certmagic finds out that it cannot store a certificate only once it
	// has one, and then gives up silently: find out now.
	if err := writable(c.ACMEDir); err != nil {
		return nil, &config.Error{Var: "FERRY_EDGE_ACME_DIR", Form: "a directory ferry can create and write", Err: err}
	}
	acme := cert.ACME{
		CA: string(c.ACME), Dir: c.ACMEDir, Email: c.ACMEEmail, CARoot: c.ACMECARoot, Hosts: c.PublicHost,
		HTTPPort: challengePort(c.Listen, false), TLSPort: challengePort(c.Listen, true), Log: log,
	}
	m, err := acme.Start(ctx, crt)
	if err != nil {
		return nil, &config.Error{Var: "FERRY_EDGE_ACME", Err: err}
	}
	site.tls = &tls.Config{GetCertificate: m.GetCertificate, MinVersion: tls.VersionTLS12}
	decoy := site.handler
	site.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !m.HTTPChallenge(w, r) {
			decoy.ServeHTTP(w, r)
		}
	})
	return site, nil
}

// writable creates dir if need be and checks that a file can be written
// in it.
func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".ferry-check-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// challengePort is the port the CA's challenges are answered on: the CA
// connects to 80 (HTTP-01) and 443 (TLS-ALPN-01), so the listener on that
// port if there is one, else the first that could take it behind a port
// forward (plain HTTP or TLS, routed by first bytes, no PROXY header); 0
// when there is none.
func challengePort(ls []config.Listener, useTLS bool) int {
	want := 80
	if useTLS {
		want = 443
	}
	first := 0
	for _, l := range ls {
		if l.TLS() != useTLS || l.ProxyProtocol() || l.DecoyOff || l.Media() {
			continue
		}
		_, port, _ := net.SplitHostPort(l.Addr)
		n, _ := strconv.Atoi(port)
		if n == want {
			return n
		}
		if first == 0 {
			first = n
		}
	}
	return first
}

// listenClients opens the client listeners of an edge or standalone.
func listenClients(c config.Clients) ([]edge.Listener, error) {
	var lns []edge.Listener
	for _, l := range c.Listen {
		ln, err := listen(l.Addr, "FERRY_EDGE_LISTEN")
		if err != nil {
			closeAll(lns)
			return nil, err
		}
		lns = append(lns, edge.Listener{Listener: ln, Route: l.Route, TLS: l.TLS(), Media: l.Media(), ProxyProtocol: l.ProxyProtocol(), DecoyOff: l.DecoyOff})
	}
	return lns, nil
}

// listen binds addr, and says how to fix the common failures.
func listen(addr, variable string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if hint := listenHint(err, addr, variable); hint != "" {
			return nil, fmt.Errorf("%w: %s", err, hint)
		}
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

// listenError is err, a tunnel listener's failure to open on addr, with its
// variable and how to fix the common failures.
func listenError(err error, addr, variable string) error {
	err = fmt.Errorf("%s %w", variable, err)
	if hint := listenHint(err, addr, variable); hint != "" {
		return fmt.Errorf("%w: %s", err, hint)
	}
	return err
}

// listenHint says how to fix err, a failure to bind addr for variable, when
// it is a common one; empty otherwise.
func listenHint(err error, addr, variable string) string {
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	// ss lists the sockets of the protocol that failed: QUIC's are UDP.
	ssFlags := "-ltnp"
	if opErr := (*net.OpError)(nil); errors.As(err, &opErr) && strings.HasPrefix(opErr.Net, "udp") {
		ssFlags = "-lunp"
	}
	switch {
	case errors.Is(err, syscall.EACCES) && port < 1024:
		return "ports below 1024 need root or the CAP_NET_BIND_SERVICE capability " +
			"(sudo setcap cap_net_bind_service=+ep $(command -v ferry)), or choose other ports with " + variable
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Sprintf("another program already listens on port %d (see: ss %s 'sport = :%d'); stop it or choose another port with %s", port, ssFlags, port, variable)
	}
	return ""
}

func closeAll[L interface{ Close() error }](ls []L) {
	for _, l := range ls {
		l.Close()
	}
}
