package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"ferry/tunnel"
)

// Options choose what a run measures.
type Options struct {
	Ferry string // the ferry binary that edges, origins and standalone run
	// Previous, when set, is another ferry binary (the previous release)
	// whose tunnel paths and non-reading clients are measured in the
	// same run, each row beside this binary's.
	Previous   string
	Self       string   // the benchmark's binary, which runs the test server and the splice relay ("server", "relay")
	Transports []string // tunnel transports: ws, wss, quic
	Bytes      int64    // bytes per throughput measurement
	Setups     int      // sequential connections for setup latency
	Idle       []int    // idle connections held, cumulative steps
	LongBytes  int64    // bytes per direction across the 100 ms link
	Strangers  int      // strangers' QUIC handshakes per measurement
	Sessions   int      // tunnel session setups per transport and binary
	// Only names the parts to measure (Parts); empty means all.
	Only []string
	// Limit bounds one transfer: a stalled path fails its figure, not the
	// run.
	Limit    time.Duration
	Progress io.Writer
}

// Full is a full run; Quick one for tests, in seconds.
var (
	Full  = Options{Transports: []string{"ws", "wss", "quic"}, Bytes: 1 << 30, Setups: 2000, Idle: []int{1000, 5000, 15000}, LongBytes: 256 << 20, Strangers: 1000, Sessions: 200, Limit: time.Minute}
	Quick = Options{Transports: []string{"ws", "wss", "quic"}, Bytes: 16 << 20, Setups: 100, Idle: []int{50, 200}, LongBytes: 8 << 20, Strangers: 30, Sessions: 5, Limit: 10 * time.Second}
)

// Parts are what Options.Only may name.
var Parts = []string{"paths", "sessions", "idle", "long", "iperf3", "nonreaders", "strangers"}

func (o Options) runs(part string) bool {
	return len(o.Only) == 0 || slices.Contains(o.Only, part)
}

// LongRTT is the round trip of the emulated long link.
const LongRTT = 100 * time.Millisecond

// Report is a run's figures; the JSON the bench writes.
type Report struct {
	Machine  string     `json:"machine"`
	Go       string     `json:"go"`
	OneHop   string     `json:"one_hop"` // what the one-hop baseline was
	Paths    []Path     `json:"paths"`
	Idle     []Idle     `json:"idle"`
	LongLink []LongLink `json:"long_link"`
	// IPerf3 is one stream of Debian's iperf3, client and server, through
	// HAProxy and through ferry; IPerf3Note says why it is missing.
	IPerf3     []IPerf3     `json:"iperf3,omitempty"`
	IPerf3Note string       `json:"iperf3_note,omitempty"`
	NonReaders []NonReaders `json:"non_readers,omitempty"`
	Strangers  []Strangers  `json:"strangers,omitempty"`
	Sessions   []Sessions   `json:"sessions,omitempty"`
}

// Path holds one path's throughput (MB/s), setup latency and CPU cost.
type Path struct {
	Name     string  `json:"name"` // direct, one-hop, ws, wss, quic
	Up1      float64 `json:"up_1_stream_mbps"`
	Down1    float64 `json:"down_1_stream_mbps"`
	Up8      float64 `json:"up_8_streams_mbps"`
	Down8    float64 `json:"down_8_streams_mbps"`
	SetupP50 float64 `json:"setup_p50_ms"`
	SetupP99 float64 `json:"setup_p99_ms"`
	// Context switches (a thread going to sleep or being preempted) per
	// connection of the setup measurement, in the relay's processes
	// together: each is a wake-up on the connection's path or beside it.
	SetupSwitches float64 `json:"setup_switches_per_conn,omitempty"`
	// CPU-seconds per GB relayed over one stream each way: the edge's (or
	// the one-hop relay's) and the origin's, and GB per CPU-second of both.
	CPUEdge        float64 `json:"cpu_s_per_gb_edge,omitempty"`
	CPUOrigin      float64 `json:"cpu_s_per_gb_origin,omitempty"`
	GBPerCPUSecond float64 `json:"gb_per_cpu_s,omitempty"`
}

// Idle is the memory of edge and origin holding idle clients.
type Idle struct {
	Transport string  `json:"transport"`
	Clients   string  `json:"clients"` // tcp, or tls: a TLS handshake first, as on port 443
	Conns     int     `json:"conns"`
	EdgeRSS   int64   `json:"edge_rss_kib"`
	OriginRSS int64   `json:"origin_rss_kib"`
	EdgeKiB   float64 `json:"edge_kib_per_conn"`
	OriginKiB float64 `json:"origin_kib_per_conn"`
	EdgeGor   float64 `json:"edge_goroutines_per_conn"`
	OriginGor float64 `json:"origin_goroutines_per_conn"`
}

// LongLink is one stream across the emulated long link.
type LongLink struct {
	Transport string  `json:"transport"`
	RTTms     float64 `json:"rtt_ms"`
	Up        float64 `json:"up_mbps"`
	Down      float64 `json:"down_mbps"`
	Bound     float64 `json:"window_bound_mbps"` // the stream window over the RTT
	Err       string  `json:"error,omitempty"`
}

// Run measures, printing progress, and returns the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	r := &Report{Machine: machine(), Go: runtime.Version()}
	srv, err := startServer(o.Self)
	if err != nil {
		return nil, err
	}
	defer srv.stop()

	// A path starts what relays it and returns the addresses of its
	// services and the processes to measure.
	type path struct {
		name  string
		start func() (map[string]string, []*child, error)
	}
	paths := []path{
		{"direct", func() (map[string]string, []*child, error) { return srv.addrs, nil, nil }},
		{"one-hop", func() (map[string]string, []*child, error) {
			c, addrs, what, err := startOneHop(o.Self, srv.addrs)
			r.OneHop = what
			return addrs, []*child{c}, err
		}},
		// ferry's own one hop, the drop-in for the official proxy.
		{"standalone", func() (map[string]string, []*child, error) {
			c, addrs, err := startStandalone(o.Ferry, srv.addrs)
			return addrs, []*child{c}, err
		}},
	}
	for _, tr := range o.Transports {
		for _, f := range o.ferries() {
			name := tr
			if f.label != "this" {
				name += " (" + f.label + ")"
			}
			paths = append(paths, path{name, func() (map[string]string, []*child, error) {
				p, err := startPair(ctx, f.bin, tr, srv.addrs, "")
				if err != nil {
					return nil, nil, err
				}
				return p.addrs, []*child{p.edge, p.origin}, nil
			}})
		}
	}
	if !o.runs("paths") {
		paths = nil
	}
	for _, p := range paths {
		fmt.Fprintf(o.Progress, "measuring %s\n", p.name)
		addrs, children, err := p.start()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		res, err := measurePath(p.name, addrs, children, o)
		for _, c := range children {
			c.stop()
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		r.Paths = append(r.Paths, res)
	}
	if o.runs("sessions") {
		fmt.Fprintf(o.Progress, "%d tunnel session setups over each transport, a fresh edge each\n", o.Sessions)
		var err error
		if r.Sessions, err = measureSessions(ctx, o); err != nil {
			return nil, fmt.Errorf("sessions: %w", err)
		}
	}
	// Most clients come to port 443 with TLS, whose state the edge keeps
	// for each; one transport shows what that costs.
	type idleRun struct{ tr, clients string }
	var idles []idleRun
	if o.runs("idle") {
		for _, tr := range o.Transports {
			idles = append(idles, idleRun{tr, "tcp"})
		}
		// Clients with and without first-byte routing (?decoy=off): what
		// the routing costs an idle client.
		idles = append(idles, idleRun{o.Transports[0], "tcp-off"}, idleRun{o.Transports[0], "tls"}, idleRun{o.Transports[0], "tls-off"})
	}
	for _, i := range idles {
		fmt.Fprintf(o.Progress, "idle %s clients over %s\n", i.clients, i.tr)
		idle, err := measureIdle(ctx, o, i.tr, i.clients, srv.addrs)
		if err != nil {
			return nil, fmt.Errorf("idle %s clients over %s: %w", i.clients, i.tr, err)
		}
		r.Idle = append(r.Idle, idle...)
	}
	if o.runs("iperf3") {
		fmt.Fprintf(o.Progress, "iperf3 through HAProxy and ferry\n")
		var err error
		if r.IPerf3, r.IPerf3Note, err = measureIPerf3(ctx, o, srv.addrs); err != nil {
			return nil, fmt.Errorf("iperf3: %w", err)
		}
	}
	for _, tr := range []string{"ws", "quic"} {
		if !o.runs("nonreaders") || !slices.Contains(o.Transports, tr) {
			continue
		}
		for _, f := range o.ferries() {
			fmt.Fprintf(o.Progress, "%d non-reading clients over %s (%s)\n", NonReadingClients, tr, f.label)
			nr, err := measureNonReaders(ctx, f.bin, f.label, tr, srv.addrs)
			if err != nil {
				return nil, fmt.Errorf("non-reading clients over %s (%s): %w", tr, f.label, err)
			}
			r.NonReaders = append(r.NonReaders, nr)
		}
	}
	if o.runs("strangers") {
		fmt.Fprintf(o.Progress, "%d strangers' QUIC handshakes, at quic-go's HTTP/3 server and ferry's origins\n", o.Strangers)
		var err error
		if r.Strangers, err = measureStrangers(ctx, o); err != nil {
			return nil, fmt.Errorf("strangers: %w", err)
		}
	}
	for _, tr := range []string{"ws", "quic"} {
		if !o.runs("long") {
			break
		}
		fmt.Fprintf(o.Progress, "one stream over %s across a %v link\n", tr, LongRTT)
		ll, err := measureLong(ctx, o, tr, srv.addrs)
		if err != nil {
			ll.Err = err.Error()
		}
		r.LongLink = append(r.LongLink, ll)
	}
	return r, nil
}

// ferry is a binary measured and how the report names it.
type ferry struct{ bin, label string }

func (o Options) ferries() []ferry {
	fs := []ferry{{o.Ferry, "this"}}
	if o.Previous != "" {
		fs = append(fs, ferry{o.Previous, "previous"})
	}
	return fs
}

func measurePath(name string, addrs map[string]string, children []*child, o Options) (Path, error) {
	p := Path{Name: name}
	var err error
	cpu0 := cpuTimes(children)
	if p.Up1, err = upload(addrs[sinkSvc], 1, o.Bytes, o.Limit); err != nil {
		return p, err
	}
	if p.Down1, err = download(addrs[sourceSvc], 1, o.Bytes, o.Limit); err != nil {
		return p, err
	}
	// CPU per GB over one stream each way: the figure that carries over to
	// other hardware.
	if len(children) > 0 {
		cpu := cpuTimes(children)
		gb := 2 * float64(o.Bytes) / 1e9
		p.CPUEdge = (cpu[0] - cpu0[0]) / gb
		total := cpu[0] - cpu0[0]
		if len(children) > 1 {
			p.CPUOrigin = (cpu[1] - cpu0[1]) / gb
			total += cpu[1] - cpu0[1]
		}
		// A quick run may move too few bytes for a clock tick of CPU.
		if total > 0 {
			p.GBPerCPUSecond = gb / total
		}
	}
	if p.Up8, err = upload(addrs[sinkSvc], 8, o.Bytes, o.Limit); err != nil {
		return p, err
	}
	if p.Down8, err = download(addrs[sourceSvc], 8, o.Bytes, o.Limit); err != nil {
		return p, err
	}
	sw0 := switches(children)
	p.SetupP50, p.SetupP99, err = setup(addrs[echoSvc], o.Setups)
	p.SetupSwitches = float64(switches(children)-sw0) / float64(o.Setups)
	return p, err
}

func measureIdle(ctx context.Context, o Options, tr, clients string, targets map[string]string) ([]Idle, error) {
	pair, err := startPair(ctx, o.Ferry, tr, targets, "")
	if err != nil {
		return nil, err
	}
	defer pair.stop()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	addr, tlsClients := pair.addrs[echoSvc], strings.HasPrefix(clients, "tls")
	switch clients {
	case "tls":
		addr = pair.addrs[echoTLS]
	case "tls-off":
		addr = pair.addrs[echoTLSOff]
	case "tcp-off":
		addr = pair.addrs[echoOff]
	}
	// One client first, so that the baseline has sessions and pools warm.
	if conns, err = openIdle(addr, tlsClients, conns, 1); err != nil {
		return nil, err
	}
	e0, o0 := rssKiB(pair.edge.pid()), rssKiB(pair.origin.pid())
	eg0, og0 := goroutines(pair.edge.admin), goroutines(pair.origin.admin)
	var out []Idle
	for _, n := range o.Idle {
		if conns, err = openIdle(addr, tlsClients, conns, n+1); err != nil {
			return nil, fmt.Errorf("at %d connections: %w", len(conns), err)
		}
		e, og := rssKiB(pair.edge.pid()), rssKiB(pair.origin.pid())
		out = append(out, Idle{
			Transport: tr, Clients: clients, Conns: n, EdgeRSS: e, OriginRSS: og,
			EdgeKiB: float64(e-e0) / float64(n), OriginKiB: float64(og-o0) / float64(n),
			EdgeGor:   float64(goroutines(pair.edge.admin)-eg0) / float64(n),
			OriginGor: float64(goroutines(pair.origin.admin)-og0) / float64(n),
		})
	}
	return out, nil
}

func measureLong(ctx context.Context, o Options, tr string, targets map[string]string) (LongLink, error) {
	ll := LongLink{Transport: tr, RTTms: float64(LongRTT) / float64(time.Millisecond)}
	// go-yamux grants window only once half of it was read, so that a
	// steady stream has half its window in flight.
	ll.Bound = float64(tunnel.StreamWindow) / 2 / LongRTT.Seconds() / 1e6
	if tr == "quic" {
		ll.Bound = float64(tunnel.QUICStreamWindow) / LongRTT.Seconds() / 1e6
	}
	pair, err := startPair(ctx, o.Ferry, tr, targets, "delay")
	if err != nil {
		return ll, err
	}
	defer pair.stop()
	if ll.Up, err = upload(pair.addrs[sinkSvc], 1, o.LongBytes, o.Limit); err != nil {
		return ll, err
	}
	ll.Down, err = download(pair.addrs[sourceSvc], 1, o.LongBytes, o.Limit)
	return ll, err
}

// child is a process the bench started.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	admin string // its admin endpoint, for ferry children
	log   *strings.Builder
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) stop() {
	if c == nil {
		return
	}
	if c.stdin != nil {
		c.stdin.Close()
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		c.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// start runs a child; with n > 0 it reads the n addresses it prints.
func start(bin string, args, env []string, n int) (*child, map[string]string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	c := &child{cmd: cmd, log: &strings.Builder{}}
	cmd.Stderr = c.log
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	c.stdin = stdin
	var stdout io.Reader
	if n > 0 {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			return nil, nil, err
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	if n == 0 {
		return c, nil, nil
	}
	addrs, err := readAddrs(stdout, n)
	if err != nil {
		c.stop()
		return nil, nil, err
	}
	return c, addrs, nil
}

type server struct {
	*child
	addrs map[string]string
}

func startServer(bin string) (*server, error) {
	c, addrs, err := start(bin, []string{"server"}, nil, len(services))
	if err != nil {
		return nil, fmt.Errorf("test server: %w", err)
	}
	return &server{c, addrs}, nil
}

// startOneHop starts HAProxy in mode tcp in front of the test server, or
// the splice relay where HAProxy is not installed.
func startOneHop(bin string, targets map[string]string) (*child, map[string]string, string, error) {
	hap, err := exec.LookPath("haproxy")
	if err != nil {
		c, byTarget, err := start(bin, append([]string{"relay"}, targets[echoSvc], targets[sinkSvc], targets[sourceSvc]), nil, len(services))
		if err != nil {
			return nil, nil, "", err
		}
		addrs := map[string]string{}
		for name, t := range targets {
			addrs[name] = byTarget[t]
		}
		return c, addrs, "Go splice relay (HAProxy is not installed)", nil
	}
	c, addrs, err := startHAProxy(targets)
	if err != nil {
		return nil, nil, "", err
	}
	out, _ := exec.Command(hap, "-v").Output()
	what, _, _ := strings.Cut(string(out), "\n")
	return c, addrs, what + ", mode tcp", nil
}

// startHAProxy starts HAProxy in mode tcp with a listener for each name of
// targets, and returns the addresses it listens on by name.
func startHAProxy(targets map[string]string) (*child, map[string]string, error) {
	hap, err := exec.LookPath("haproxy")
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "ferry-bench")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir) // HAProxy has read its configuration by the time it listens
	var cfg strings.Builder
	cfg.WriteString("global\n  maxconn 9000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 200s\n  timeout server 200s\n")
	free, err := freeAddrs(len(targets))
	if err != nil {
		return nil, nil, err
	}
	names := slices.Sorted(maps.Keys(targets))
	addrs := map[string]string{}
	for i, name := range names {
		addrs[name] = free[i]
		fmt.Fprintf(&cfg, "listen %s\n  bind %s\n  server s %s\n", name, free[i], targets[name])
	}
	path := dir + "/haproxy.cfg"
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		return nil, nil, err
	}
	c, _, err := start(hap, []string{"-db", "-f", path}, nil, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := waitListenAll(addrs); err != nil {
		c.stop()
		return nil, nil, fmt.Errorf("haproxy: %w\n%s", err, c.log)
	}
	return c, addrs, nil
}

// startStandalone starts `ferry standalone` in front of the test server.
func startStandalone(bin string, targets map[string]string) (*child, map[string]string, error) {
	free, err := freeAddrs(len(services))
	if err != nil {
		return nil, nil, err
	}
	addrs, ls, tgts := clientSide(free, targets)
	c, _, err := start(bin, []string{"standalone"}, []string{"FERRY_LOG_LEVEL=warn", "FERRY_ADMIN=", "FERRY_GRACE=1s",
		"FERRY_EDGE_LISTEN=" + strings.Join(ls, ","), "FERRY_ORIGIN_TARGETS=" + strings.Join(tgts, ","),
		"FERRY_EDGE_MAX_CONNS=100000", "FERRY_EDGE_MAX_CONNS_PER_IP=0"}, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := waitListenAll(addrs); err != nil {
		c.stop()
		return nil, nil, fmt.Errorf("standalone: %w\n%s", err, c.log)
	}
	return c, addrs, nil
}

// clientSide assigns the services one address each from free, and returns
// those, the client listeners (FERRY_EDGE_LISTEN) and the targets
// (FERRY_ORIGIN_TARGETS) that lead each to its service in targets.
func clientSide(free []string, targets map[string]string) (addrs map[string]string, listeners, tgts []string) {
	addrs = map[string]string{}
	for i, name := range services {
		addrs[name] = free[i]
		l := "tcp://" + free[i] + "/" + name
		if name != echoSvc {
			// Their clients send bulk bytes, not WhatsApp's opening.
			l += "?decoy=off"
		}
		listeners = append(listeners, l)
		tgts = append(tgts, name+"="+targets[name])
	}
	return addrs, listeners, tgts
}

// pair is an origin and an edge whose client listeners lead to the test
// server's services.
type pair struct {
	edge, origin *child
	addrs        map[string]string
	relay        io.Closer // the delay relay between them, if any
}

// stop stops what has started.
func (p *pair) stop() {
	if p.edge != nil {
		p.edge.stop()
	}
	p.origin.stop()
	if p.relay != nil {
		p.relay.Close()
	}
}

// startPair starts an origin and an edge over tr; with via "delay" the
// tunnel crosses a relay that delays each direction by half of LongRTT.
func startPair(ctx context.Context, bin, tr string, targets map[string]string, via string) (*pair, error) {
	secret := make([]byte, 33)
	rand.Read(secret)
	common := []string{"FERRY_SECRET=" + base64.StdEncoding.EncodeToString(secret), "FERRY_LOG_LEVEL=warn", "FERRY_GRACE=1s"}
	// Every address first, so that a failure leaves no child behind.
	_, iperf := targets[iperfSvc]
	free, err := freeAddrs(3 + len(services) + 4)
	if err != nil {
		return nil, err
	}
	tunnelAddr, oAdmin, eAdmin, clientAddrs := free[0], free[1], free[2], free[3:]
	listen := tr + "://" + tunnelAddr
	if tr != "quic" {
		listen += "/t"
	}
	p := &pair{}
	var ls, tgts []string
	p.addrs, ls, tgts = clientSide(clientAddrs, targets)
	p.addrs[echoTLS] = clientAddrs[len(services)]
	p.addrs[echoTLSOff] = clientAddrs[len(services)+1]
	p.addrs[echoOff] = clientAddrs[len(services)+2]
	ls = append(ls, "tls://"+p.addrs[echoTLS]+"/"+echoSvc, "tls://"+p.addrs[echoTLSOff]+"/"+echoSvc+"?decoy=off",
		"tcp://"+p.addrs[echoOff]+"/"+echoSvc+"?decoy=off")
	if iperf {
		// iperf3's control connection and its data both start with
		// iperf3's bytes, not WhatsApp's.
		p.addrs[iperfSvc] = clientAddrs[len(services)+3]
		ls = append(ls, "tcp://"+p.addrs[iperfSvc]+"/"+iperfSvc+"?decoy=off")
		tgts = append(tgts, iperfSvc+"="+targets[iperfSvc])
	}

	if p.origin, _, err = start(bin, []string{"origin"}, append(common, "FERRY_ORIGIN_LISTEN="+listen,
		"FERRY_ORIGIN_TARGETS="+strings.Join(tgts, ","), "FERRY_ADMIN="+oAdmin), 0); err != nil {
		return nil, err
	}
	p.origin.admin = oAdmin
	dial := listen
	if via == "delay" {
		var addr string
		if tr == "quic" {
			addr, p.relay, err = delayUDP(tunnelAddr, LongRTT/2)
		} else {
			addr, p.relay, err = delayTCP(tunnelAddr, LongRTT/2)
		}
		if err != nil {
			p.stop()
			return nil, err
		}
		dial = strings.Replace(listen, tunnelAddr, addr, 1)
	}
	if p.edge, _, err = start(bin, []string{"edge"}, append(common, "FERRY_EDGE_ORIGINS="+dial, "FERRY_EDGE_LISTEN="+strings.Join(ls, ","),
		"FERRY_EDGE_MAX_CONNS=100000", "FERRY_EDGE_MAX_CONNS_PER_IP=0", "FERRY_ADMIN="+eAdmin), 0); err != nil {
		p.stop()
		return nil, err
	}
	p.edge.admin = eAdmin
	if err := waitReady(ctx, eAdmin); err != nil {
		p.stop()
		return nil, fmt.Errorf("edge over %s: %w\nedge: %s\norigin: %s", tr, err, p.edge.log, p.origin.log)
	}
	return p, nil
}

func waitReady(ctx context.Context, admin string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return errors.New("not ready within 15 s")
}

// waitListenAll waits until something listens on every address of addrs.
func waitListenAll(addrs map[string]string) error {
	for _, a := range addrs {
		if err := waitListen(a); err != nil {
			return err
		}
	}
	return nil
}

func waitListen(addr string) error {
	for range 500 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s", addr)
}

// freeAddrs returns n distinct loopback addresses that were free a moment
// ago, for children to listen on.
func freeAddrs(n int) ([]string, error) {
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// cpuTimes returns the CPU seconds (user and system) of each child.
func cpuTimes(cs []*child) []float64 {
	var out []float64
	for _, c := range cs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.pid()))
		if err != nil {
			out = append(out, 0)
			continue
		}
		// Fields after the command's closing parenthesis; utime and stime
		// are the 14th and 15th of the whole line, in clock ticks (100/s).
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		var ut, st float64
		fmt.Sscan(f[11], &ut)
		fmt.Sscan(f[12], &st)
		out = append(out, (ut+st)/100)
	}
	return out
}

// switches counts the context switches, voluntary or not, of every thread
// of the children.
func switches(cs []*child) int64 {
	var n int64
	for _, c := range cs {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", c.pid()))
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue // the thread has just ended
			}
			n += lineValue(bytes.NewReader(b), "voluntary_ctxt_switches:")
			n += lineValue(bytes.NewReader(b), "nonvoluntary_ctxt_switches:")
		}
	}
	return n
}

func rssKiB(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	return lineValue(f, "VmRSS:")
}

// goroutines reads go_goroutines from a child's /metrics.
func goroutines(admin string) int64 {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	return lineValue(resp.Body, "go_goroutines ")
}

// lineValue is the number after prefix on the first line of r that starts
// with it, or 0.
func lineValue(r io.Reader, prefix string) int64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			var n int64
			fmt.Sscan(v, &n)
			return n
		}
	}
	return 0
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s/%s", model, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
}

// WriteJSON writes r to w, indented.
func (r *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}
