package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"ferry/check"
	"ferry/config"
	"ferry/dnsupdate"
	"ferry/install"
	"ferry/link"
)

const deployForm = "ferry deploy edge|origin [-i KEY] [-env FILE] [-binary FILE] [-dns PROVIDER] [-replace OLDHOST] USER@HOST[:PORT]"

// dnsTTL is the records' TTL with -dns: short, so that phones follow the
// next replacement within a minute or two.
const dnsTTL = 60 * time.Second

// deployer holds what `ferry deploy` takes from its surroundings, so that
// tests can give their own.
type deployer struct {
	stdin   io.Reader
	stdout  io.Writer
	getenv  func(string) string
	environ []string
	// newDNS returns the updater of a -dns provider; nil: -dns is refused.
	newDNS func(provider string, getenv func(string) string) (install.DNS, error)
	trace  func(cmd string) // see install.Options.Trace
}

// runDeploy is `ferry deploy`: install or upgrade a role on a host over
// SSH, wait until it is ready, check it from here, and print how to use it.
func runDeploy(ctx context.Context, args []string, stdout io.Writer) error {
	d := deployer{stdin: os.Stdin, stdout: stdout, getenv: os.Getenv, environ: os.Environ(),
		newDNS: func(provider string, getenv func(string) string) (install.DNS, error) {
			return dnsupdate.New(provider, getenv)
		}}
	return d.run(ctx, args)
}

func (d deployer) run(ctx context.Context, args []string) error {
	bad := func(err error) error { return &config.Error{Var: "ferry deploy", Form: deployForm, Err: err} }
	if len(args) == 0 || (args[0] != "edge" && args[0] != "origin") {
		return bad(fmt.Errorf("want edge or origin first"))
	}
	role := args[0]
	fs := flag.NewFlagSet("ferry deploy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	key := fs.String("i", "", "SSH private key file (else ssh-agent's keys)")
	envFile := fs.String("env", "", "environment file of the role (KEY=VALUE lines); the FERRY_* variables set here win over it")
	binary := fs.String("binary", "", "ferry binary for the host: a release .tar.gz or a bare binary (default: this one, when the host's architecture is this one's)")
	dnsProvider := fs.String("dns", "", "point FERRY_EDGE_PUBLIC_HOST's A/AAAA records at the host once it passes the check: rfc2136 or cloudflare")
	replace := fs.String("replace", "", "after the new edge passes (and DNS moved), drain and stop ferry on this USER@HOST[:PORT]")
	var targetArg string
	rest := args[1:]
	// The host may come first or last, as for ferry check.
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		targetArg, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return bad(err)
	}
	if targetArg == "" && fs.NArg() == 1 {
		targetArg = fs.Arg(0)
	} else if fs.NArg() > 0 || targetArg == "" {
		return bad(fmt.Errorf("want one USER@HOST[:PORT]"))
	}
	target, err := install.ParseTarget(targetArg)
	if err != nil {
		return bad(err)
	}
	var old install.Target
	if *replace != "" {
		if old, err = install.ParseTarget(*replace); err != nil {
			return bad(fmt.Errorf("-replace: %w", err))
		}
	}
	if role == "origin" && (*dnsProvider != "" || *replace != "") {
		return bad(fmt.Errorf("-dns and -replace are for edges"))
	}

	file := install.Env{}
	if *envFile != "" {
		b, err := os.ReadFile(*envFile)
		if err != nil {
			return bad(fmt.Errorf("-env: %w", err))
		}
		if file, err = install.ParseEnv(b); err != nil {
			return bad(fmt.Errorf("-env %s: %w", *envFile, err))
		}
	}
	env := install.Merge(file, install.FromEnviron(d.environ))
	if len(env["FERRY_SECRET"]) < 32 {
		return &config.Error{Var: "FERRY_SECRET", Err: fmt.Errorf("must be set (in -env or here) and at least 32 characters")}
	}
	listen, err := listeners(env)
	if err != nil {
		return err
	}
	var dns install.DNS
	publicHost := target.Host
	if ph := strings.TrimSpace(strings.Split(env["FERRY_EDGE_PUBLIC_HOST"], ",")[0]); ph != "" {
		publicHost = ph
	}
	if *dnsProvider != "" {
		if env["FERRY_EDGE_PUBLIC_HOST"] == "" {
			return &config.Error{Var: "FERRY_EDGE_PUBLIC_HOST", Err: fmt.Errorf("-dns needs the host name phones use, whose records it moves")}
		}
		if d.newDNS == nil {
			return bad(fmt.Errorf("-dns %s: no DNS updater in this build", *dnsProvider))
		}
		if dns, err = d.newDNS(*dnsProvider, d.getenv); err != nil {
			return fmt.Errorf("-dns %s: %w", *dnsProvider, err)
		}
	}

	home := d.getenv("HOME")
	if home == "" {
		return &config.Error{Var: "HOME", Err: fmt.Errorf("is not set: ferry deploy keeps host keys in $HOME/.ssh/known_hosts")}
	}
	o := install.Options{
		Role: role, Target: target, KeyFile: *key, Env: env, BinaryFile: *binary,
		KnownHosts: filepath.Join(home, ".ssh", "known_hosts"),
		AgentSock:  d.getenv("SSH_AUTH_SOCK"), In: bufio.NewReader(d.stdin), Out: d.stdout, Trace: d.trace,
	}
	start := time.Now()
	s, err := install.Connect(ctx, o)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Install(ctx); err != nil {
		return err
	}
	if err := s.WaitReady(ctx); err != nil {
		return err
	}
	fmt.Fprintf(d.stdout, "%s is ready on %s (%.1f s)\n", o.Role, target.Host, time.Since(start).Seconds())

	if role == "origin" {
		fmt.Fprintln(d.stdout, "\nEdges reach it at (FERRY_EDGE_ORIGINS; wss:// through a CDN or TLS-terminating proxy in front):")
		for _, u := range originURLs(env, target.Host) {
			fmt.Fprintln(d.stdout, "  "+u)
		}
		return nil
	}

	fmt.Fprintf(d.stdout, "\nferry check %s\n", target.Host)
	rs := check.Run(ctx, target.Host, checkPorts(listen), 10*time.Second)
	check.Write(d.stdout, target.Host, rs)
	if !check.Works(rs) {
		return fmt.Errorf("the new edge on %s is running, but chat does not work through it", target.Host)
	}
	fmt.Fprintf(d.stdout, "checked: %.1f s after ferry deploy began\n", time.Since(start).Seconds())

	if dns != nil {
		ip := s.RemoteIP()
		fmt.Fprintf(d.stdout, "\npointing %s at %s (TTL %v)\n", publicHost, ip, dnsTTL)
		if err := dns.Point(ctx, publicHost, []netip.Addr{ip}, dnsTTL); err != nil {
			return fmt.Errorf("-dns %s: %w", *dnsProvider, err)
		}
		fmt.Fprintf(d.stdout, "%s points at %s (%.1f s after ferry deploy began)\n", publicHost, ip, time.Since(start).Seconds())
	}
	if *replace != "" {
		oo := o
		oo.Target, oo.BinaryFile = old, ""
		olds, err := install.Connect(ctx, oo)
		if err != nil {
			return fmt.Errorf("-replace: %w", err)
		}
		defer olds.Close()
		fmt.Fprintf(d.stdout, "\ndraining ferry-edge on %s\n", old.Host)
		what, err := olds.Stop(ctx)
		if err != nil {
			return fmt.Errorf("-replace: %w", err)
		}
		fmt.Fprintf(d.stdout, "ferry-edge on %s: %s\n", old.Host, what)
	}

	u := link.URL(publicHost, link.PortsOf(listen))
	fmt.Fprintf(d.stdout, "\nShare link:\n%s\n\n", u)
	return link.WriteTerminal(d.stdout, u)
}

// listeners are the edge's client listeners of env (its default when unset).
func listeners(env install.Env) ([]config.Listener, error) {
	v, ok := env["FERRY_EDGE_LISTEN"]
	if !ok {
		for _, cv := range config.Vars(&config.Clients{}) {
			if cv.Key == "FERRY_EDGE_LISTEN" {
				v = cv.Default
			}
		}
	}
	var ls config.Listeners
	if err := ls.Decode(v); err != nil {
		return nil, &config.Error{Var: "FERRY_EDGE_LISTEN", Err: err}
	}
	return ls, nil
}

// checkPorts are the listeners ferry check can test from outside: those
// without a PROXY header in front, which only a load balancer sends.
func checkPorts(ls []config.Listener) []check.Port {
	var ps []check.Port
	for _, l := range ls {
		if l.ProxyProtocol() || l.DecoyOff {
			continue
		}
		p := check.Port{Port: portNumber(l.Addr), TLS: l.TLS(), Media: l.Media()}
		if !p.Media && !strings.HasPrefix(l.Route, "chat") {
			continue
		}
		ps = append(ps, p)
	}
	return ps
}

func portNumber(addr string) int {
	var n int
	fmt.Sscanf(addr[strings.LastIndexByte(addr, ':')+1:], "%d", &n)
	return n
}

// originURLs are the tunnel URLs of env's FERRY_ORIGIN_LISTEN with host as
// their host.
func originURLs(env install.Env, host string) []string {
	v, ok := env["FERRY_ORIGIN_LISTEN"]
	if !ok {
		v = "ws://:8080/tunnel"
	}
	var out []string
	for _, l := range strings.Split(v, ",") {
		u, err := url.Parse(strings.TrimSpace(l))
		if err != nil || u.Scheme == "" {
			continue
		}
		u.Host = net.JoinHostPort(host, u.Port())
		out = append(out, u.String())
	}
	return out
}
