package main

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ferry/internal/fake"
)

// TestNonReaderWavesRSS runs the binary: three waves of 100 clients of a
// download from a fast target, each client reading nothing, come to an
// edge with FERRY_MEMORY_LIMIT set; each wave stays until the target has
// pushed what the tunnel lets through, then leaves. Within a minute of the
// last, the edge's resident set (VmRSS) is back under the limit and has
// fallen at least half way from its peak to where it started.
func TestNonReaderWavesRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := build(t)
	const (
		waves     = 3
		perWave   = 100
		limit     = 64 << 20
		perClient = 1 << 20
	)
	var filled atomic.Int64 // clients whose target pushed perClient
	reached := make(chan struct{}, waves*perWave)
	target := fake.Start(t, func(c net.Conn) {
		c.Read(make([]byte, 1))
		chunk := make([]byte, 64<<10)
		var pushed int
		for {
			n, err := c.Write(chunk)
			if pushed < perClient && pushed+n >= perClient {
				filled.Add(1)
				reached <- struct{}{}
			}
			pushed += n
			if err != nil {
				return
			}
		}
	})
	originAddr, edgeAddr := freeAddr(t), freeAddr(t)
	common := []string{"FERRY_SECRET=" + secret, "FERRY_ADMIN="}
	org := start(t, bin, append(common, "FERRY_ORIGIN_LISTEN=ws://"+originAddr+"/t", "FERRY_ORIGIN_TARGETS=download="+target.Addr()),
		"ferry origin starting", "origin")
	org.discardLines()
	edg := start(t, bin, append(common, "FERRY_EDGE_LISTEN=tcp://"+edgeAddr+"/download?decoy=off", "FERRY_EDGE_ORIGINS=ws://"+originAddr+"/t",
		"FERRY_MEMORY_LIMIT=64MiB"), "ferry edge starting", "edge")
	edg.waitFor(t, "tunnel up")
	edg.discardLines()
	pid := edg.cmd.Process.Pid
	base := vmRSS(t, pid)

	var peak int64
	for w := range waves {
		conns := make([]net.Conn, 0, perWave)
		for range perWave {
			c, err := net.Dial("tcp", edgeAddr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		timeout := time.After(30 * time.Second)
		for range perWave {
			select {
			case <-reached:
			case <-timeout:
				t.Fatalf("wave %d: %d of %d targets pushed %d KiB within 30 s", w, filled.Load()-int64(w*perWave), perWave, perClient>>10)
			}
		}
		rss := vmRSS(t, pid)
		peak = max(peak, rss)
		t.Logf("wave %d in: edge RSS %d MiB", w, rss>>20)
		for _, c := range conns {
			c.Close()
		}
	}
	// Back under the limit, and back from the peak at least half way to
	// where it started: the burst's memory is handed back, not kept for
	// the next (memlimit.Release), even when the peak stayed under the
	// limit. An edge keeps some 10-15 MiB after its first clients (pools,
	// the sessions' grown buffers), which a low peak would not leave room
	// for: 16 MiB above the start always passes.
	left := time.Now()
	back := min(limit, base+max(16<<20, (peak-base)/2))
	var rss int64
	for rss = vmRSS(t, pid); rss >= back; rss = vmRSS(t, pid) {
		if time.Since(left) > time.Minute {
			t.Fatalf("the edge's RSS is %d MiB a minute after the last wave, over %d MiB (limit %d MiB, %d MiB at start, %d at the peak)",
				rss>>20, back>>20, limit>>20, base>>20, peak>>20)
		}
		time.Sleep(100 * time.Millisecond) // polling /proc, with a deadline
	}
	t.Logf("edge RSS: %d MiB at start, %d at the peak, %d MiB %v after the last wave (limit %d MiB)",
		base>>20, peak>>20, rss>>20, time.Since(left).Round(100*time.Millisecond), limit>>20)
}

// vmRSS is the resident set of process pid, from /proc/PID/status.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS: %q", v)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}
