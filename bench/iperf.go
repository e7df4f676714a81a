package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// iperfSvc names the route to an iperf3 server behind the origin; the
// edge's listener for it has ?decoy=off, as iperf3 speaks no WhatsApp.
const iperfSvc = "iperf3"

// IPerf3 is one stream of iperf3 (client and server both Debian's) each
// way through a path: HAProxy's in mode tcp, the baseline of the same
// run, or ferry over a transport.
type IPerf3 struct {
	Path  string  `json:"path"` // one-hop, ws, wss, quic
	Up1   float64 `json:"up_1_stream_mbps"`
	Down1 float64 `json:"down_1_stream_mbps"`
	// CPU-seconds per GB of the relay's processes (HAProxy; or edge and
	// origin), and GB per CPU-second of them together.
	CPUEdge        float64 `json:"cpu_s_per_gb_edge,omitempty"`
	CPUOrigin      float64 `json:"cpu_s_per_gb_origin,omitempty"`
	GBPerCPUSecond float64 `json:"gb_per_cpu_s,omitempty"`
}

// measureIPerf3 runs an iperf3 server on loopback and its client through
// HAProxy, then through a ferry pair over each transport, o.Bytes each way
// over one stream. Without iperf3 or HAProxy it returns a note instead.
func measureIPerf3(ctx context.Context, o Options, targets map[string]string) ([]IPerf3, string, error) {
	bin, err := exec.LookPath("iperf3")
	if err != nil {
		return nil, "iperf3 is not installed: its rows are skipped (apt-get install iperf3)", nil
	}
	if _, err := exec.LookPath("haproxy"); err != nil {
		return nil, "HAProxy is not installed: iperf3 has no baseline, its rows are skipped", nil
	}
	free, err := freeAddrs(1)
	if err != nil {
		return nil, "", err
	}
	host, port, _ := strings.Cut(free[0], ":")
	// -s serves one test after another until stopped.
	srv, _, err := start(bin, []string{"-s", "-B", host, "-p", port}, nil, 0)
	if err != nil {
		return nil, "", err
	}
	defer srv.stop()
	if err := waitListen(free[0]); err != nil {
		return nil, "", fmt.Errorf("iperf3 server: %w\n%s", err, srv.log)
	}
	tg := map[string]string{}
	for k, v := range targets {
		tg[k] = v
	}
	tg[iperfSvc] = free[0]

	var out []IPerf3
	hop, addr, err := startHAProxy(map[string]string{iperfSvc: free[0]})
	if err != nil {
		return nil, "", err
	}
	r, err := iperfPath(bin, "one-hop", addr[iperfSvc], []*child{hop}, o)
	hop.stop()
	if err != nil {
		return nil, "", err
	}
	out = append(out, r)
	for _, tr := range o.Transports {
		p, err := startPair(ctx, o.Ferry, tr, tg, "")
		if err != nil {
			return nil, "", err
		}
		r, err := iperfPath(bin, tr, p.addrs[iperfSvc], []*child{p.edge, p.origin}, o)
		p.stop()
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", tr, err)
		}
		out = append(out, r)
	}
	return out, "", nil
}

// iperfPath runs iperf3's client against addr, up then down (-R), and
// reads the CPU of children around both.
func iperfPath(bin, name, addr string, children []*child, o Options) (IPerf3, error) {
	r := IPerf3{Path: name}
	cpu0 := cpuTimes(children)
	var err error
	if r.Up1, err = iperfRun(bin, addr, o, false); err != nil {
		return r, err
	}
	if r.Down1, err = iperfRun(bin, addr, o, true); err != nil {
		return r, err
	}
	cpu := cpuTimes(children)
	gb := 2 * float64(o.Bytes) / 1e9
	var total float64
	for i := range cpu {
		total += cpu[i] - cpu0[i]
	}
	r.CPUEdge = (cpu[0] - cpu0[0]) / gb
	if len(cpu) > 1 {
		r.CPUOrigin = (cpu[1] - cpu0[1]) / gb
	}
	if total > 0 {
		r.GBPerCPUSecond = gb / total
	}
	return r, nil
}

// iperfRun moves o.Bytes over one stream and returns MB/s as the
// receiving iperf3 counted them. The server takes a moment after a test
// before it accepts the next (a client meanwhile is reset), so a failed
// test is tried again twice.
func iperfRun(bin, addr string, o Options, reverse bool) (float64, error) {
	var err error
	for range 3 {
		var mbps float64
		if mbps, err = iperfOnce(bin, addr, o, reverse); err == nil {
			return mbps, nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return 0, err
}

func iperfOnce(bin, addr string, o Options, reverse bool) (float64, error) {
	host, port, _ := strings.Cut(addr, ":")
	args := []string{"-c", host, "-p", port, "-n", strconv.FormatInt(o.Bytes, 10), "-J"}
	if reverse {
		args = append(args, "-R")
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Limit+5*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, bin, args...).Output()
	var res struct {
		Error string `json:"error"`
		End   struct {
			Received struct {
				Bytes   float64 `json:"bytes"`
				Seconds float64 `json:"seconds"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if jerr := json.Unmarshal(b, &res); jerr != nil {
		return 0, fmt.Errorf("iperf3 %s: %v, %v", strings.Join(args, " "), err, jerr)
	}
	if res.Error != "" || res.End.Received.Seconds == 0 {
		return 0, fmt.Errorf("iperf3 %s: %s", strings.Join(args, " "), res.Error)
	}
	return res.End.Received.Bytes / res.End.Received.Seconds / 1e6, nil
}
