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
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ferryproxy/ferry/cert"
	"github.com/ferryproxy/ferry/config"
	"github.com/ferryproxy/ferry/decoy"
	"github.com/ferryproxy/ferry/edge"
	"github.com/ferryproxy/ferry/origin"
	"github.com/ferryproxy/ferry/tunnel"
	"github.com/ferryproxy/ferry/upstream"
)

func runEdge(ctx context.Context, logw io.Writer) error {
	var cfg config.Edge
	if err := config.Load(&cfg); err != nil {
		return err
	}
	log := newLogger(cfg.Common, logw)
	end := tunnel.End{Secret: string(cfg.Secret), Log: log}
	names, dialers, err := tunnelDialers(cfg.Origins, "FERRY_EDGE_ORIGINS", end)
	if err != nil {
		return err
	}
	tunnels := &edge.Tunnels{Pool: int(cfg.Pool), Log: log}
	for i, d := range dialers {
		tunnels.Origins = append(tunnels.Origins, edge.Origin{Name: names[i], Dialer: d})
	}
	adviseUDP(log, append(cfg.Origins, cfg.TunnelListen...))
	tunnels.Listeners, err = listenTunnels(cfg.TunnelListen, "FERRY_EDGE_TUNNEL_LISTEN", "FERRY_EDGE_TLS_CERT", cfg.TLSCert, cfg.TLSKey,
		decoy.New(cfg.Decoy.URL, cfg.Decoy.Dir), end)
	if err != nil {
		return err
	}
	lns, err := listenClients(cfg.Clients)
	if err != nil {
		closeAll(tunnels.Listeners)
		return err
	}
	log.Info("ferry edge starting", "version", versionString(), "listen", cfg.Listen, "origins", names,
		"tunnel_listen", cfg.TunnelListen, "pool", cfg.Pool, "max_conns", cfg.MaxConns, "grace", time.Duration(cfg.Grace), "secret", cfg.Secret)

	// Sessions outlive the client listeners: they carry the draining
	// clients. The origins hear at once that this edge drains.
	tctx, stopTunnels := context.WithCancel(context.WithoutCancel(ctx))
	stopDrain := context.AfterFunc(ctx, tunnels.Drain)
	defer stopDrain()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tunnels.Run(tctx)
	}()
	srv := newEdgeServer(cfg.Clients, lns, tunnels.Connect, log)
	err = srv.Run(ctx, time.Duration(cfg.Grace))
	stopTunnels()
	wg.Wait()
	log.Info("ferry edge stopped")
	return err
}

func runStandalone(ctx context.Context, logw io.Writer) error {
	var cfg config.Standalone
	if err := config.Load(&cfg); err != nil {
		return err
	}
	log := newLogger(cfg.Common, logw)
	lns, err := listenClients(cfg.Clients)
	if err != nil {
		return err
	}
	log.Info("ferry standalone starting", "version", versionString(), "listen", cfg.Listen,
		"max_conns", cfg.MaxConns, "grace", time.Duration(cfg.Grace))
	up := &upstream.Dialer{Targets: cfg.Targets, ProxyProtocol: byte(cfg.ProxyProtocol)}
	srv := newEdgeServer(cfg.Clients, lns, up.Dial, log)
	err = srv.Run(ctx, time.Duration(cfg.Grace))
	log.Info("ferry standalone stopped")
	return err
}

func runOrigin(ctx context.Context, logw io.Writer) error {
	var cfg config.Origin
	if err := config.Load(&cfg); err != nil {
		return err
	}
	log := newLogger(cfg.Common, logw)
	end := tunnel.End{Origin: true, ClientAddress: cfg.ProxyProtocol != 0, Secret: string(cfg.Secret), Log: log}
	names, dialers, err := tunnelDialers(cfg.Edges, "FERRY_ORIGIN_EDGES", end)
	if err != nil {
		return err
	}
	srv := &origin.Server{
		Pool:     int(cfg.Pool),
		Upstream: &upstream.Dialer{Targets: cfg.Targets, ProxyProtocol: byte(cfg.ProxyProtocol)},
		Log:      log,
	}
	for i, d := range dialers {
		srv.Edges = append(srv.Edges, origin.Edge{Name: names[i], Dialer: d})
	}
	adviseUDP(log, append(cfg.Listen, cfg.Edges...))
	srv.Listeners, err = listenTunnels(cfg.Listen, "FERRY_ORIGIN_LISTEN", "FERRY_ORIGIN_TLS_CERT", cfg.TLSCert, cfg.TLSKey,
		decoy.New(cfg.Decoy.URL, cfg.Decoy.Dir), end)
	if err != nil {
		return err
	}
	log.Info("ferry origin starting", "version", versionString(), "listen", cfg.Listen, "edges", names, "targets", cfg.Targets,
		"proxy_protocol", cfg.ProxyProtocol, "grace", time.Duration(cfg.Grace), "secret", cfg.Secret)
	err = srv.Run(ctx, time.Duration(cfg.Grace))
	log.Info("ferry origin stopped")
	return err
}

// tunnelDialers returns a name (the URL, which holds no secret) and a dialer
// for each URL of variable.
func tunnelDialers(urls []config.TunnelURL, variable string, end tunnel.End) ([]string, []tunnel.Dialer, error) {
	var names []string
	var dialers []tunnel.Dialer
	for _, u := range urls {
		names = append(names, u.String())
		if u.Scheme == "quic" {
			dialers = append(dialers, tunnel.NewQUICDialer(u.Host, u.Connect, u.SNI, end))
			continue
		}
		d, err := tunnel.NewWSDialer(u.URL(), u.Connect, u.SNI, end)
		if err != nil {
			return nil, nil, &config.Error{Var: variable, Err: err}
		}
		dialers = append(dialers, d)
	}
	return names, dialers, nil
}

// listenTunnels opens the tunnel listeners of variable, with the certificate
// of certFile and keyFile (self-signed when empty) for wss and quic.
func listenTunnels(urls []config.TunnelURL, variable, certVar, certFile, keyFile string, decoy http.Handler, end tunnel.End) ([]tunnel.Listener, error) {
	var crt *tls.Certificate
	for _, u := range urls {
		if u.TLS() {
			c, err := cert.Load(certFile, keyFile)
			if err != nil {
				return nil, &config.Error{Var: certVar, Err: err}
			}
			crt = &c
			break
		}
	}
	verifier := tunnel.NewVerifier(end.Secret)
	var lns []tunnel.Listener
	fail := func(err error) ([]tunnel.Listener, error) {
		closeAll(lns)
		return nil, err
	}
	for _, u := range urls {
		if u.Scheme == "quic" {
			pc, err := net.ListenPacket("udp", u.Host)
			if err != nil {
				return fail(fmt.Errorf("%s %s: %w", variable, u, err))
			}
			ql, err := tunnel.ListenQUIC(pc, *crt, end)
			if err != nil {
				pc.Close()
				return fail(err)
			}
			lns = append(lns, ql)
			continue
		}
		ln, err := listen(u.Host, variable)
		if err != nil {
			return fail(err)
		}
		if u.Scheme == "wss" {
			// HTTP/1.1 only: a WebSocket cannot be hijacked from HTTP/2.
			ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*crt}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}})
		}
		lns = append(lns, tunnel.ListenWS(ln, u.Path, verifier, decoy, end))
	}
	return lns, nil
}

// adviseUDP logs what to set when the kernel keeps UDP buffers too small
// for QUIC, if any of urls is a QUIC one.
func adviseUDP(log *slog.Logger, urls []config.TunnelURL) {
	for _, u := range urls {
		if u.Scheme == "quic" {
			if advice := tunnel.UDPBufferAdvice(); advice != "" {
				log.Warn(advice)
			}
			return
		}
	}
}

func newEdgeServer(c config.Clients, lns []edge.Listener, connect edge.ConnectFunc, log *slog.Logger) *edge.Server {
	return &edge.Server{
		Listeners:        lns,
		Connect:          connect,
		MaxConns:         int(c.MaxConns),
		MaxConnsPerIP:    int(c.MaxConnsPerIP),
		HandshakeTimeout: time.Duration(c.HandshakeTimeout),
		Log:              log,
	}
}

// listenClients opens the client listeners of an edge or standalone.
func listenClients(c config.Clients) ([]edge.Listener, error) {
	var tlsConf *tls.Config
	for _, l := range c.Listen {
		if l.TLS() {
			crt, err := cert.Load(c.TLSCert, c.TLSKey)
			if err != nil {
				return nil, &config.Error{Var: "FERRY_EDGE_TLS_CERT", Err: err}
			}
			tlsConf = &tls.Config{Certificates: []tls.Certificate{crt}, MinVersion: tls.VersionTLS12}
			break
		}
	}
	var lns []edge.Listener
	for _, l := range c.Listen {
		ln, err := listen(l.Addr, "FERRY_EDGE_LISTEN")
		if err != nil {
			closeAll(lns)
			return nil, err
		}
		el := edge.Listener{Listener: ln, Route: l.Route, ProxyProtocol: l.ProxyProtocol()}
		if l.TLS() {
			el.TLS = tlsConf
		}
		lns = append(lns, el)
	}
	return lns, nil
}

// listen binds addr, and says how to fix the common failures.
func listen(addr, variable string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	switch {
	case errors.Is(err, syscall.EACCES) && port < 1024:
		return nil, fmt.Errorf("%w: ports below 1024 need root or the CAP_NET_BIND_SERVICE capability "+
			"(sudo setcap cap_net_bind_service=+ep $(command -v ferry)), or choose other ports with %s", err, variable)
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("%w: another program already listens on port %d (see: ss -ltnp 'sport = :%d'); stop it or choose another port with %s", err, port, port, variable)
	}
	return nil, fmt.Errorf("listen %s: %w", addr, err)
}

func closeAll[L interface{ Close() error }](ls []L) {
	for _, l := range ls {
		l.Close()
	}
}
