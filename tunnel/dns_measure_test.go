package tunnel

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"ferry/internal/unbound"
)

// TestMeasureDNS prints the dns transport's figures through unbound on
// loopback, for each answer size (unbound's EDNS size, and the size the
// edge asks for): one stream's throughput each way, the round trip of a
// 200-byte message on an idle session, and the queries a second at idle
// and under load. It runs only with FERRY_MEASURE set, as it takes a
// minute or two:
//
//	FERRY_MEASURE=1 go test -run TestMeasureDNS -v ./tunnel
func TestMeasureDNS(t *testing.T) {
	if os.Getenv("FERRY_MEASURE") == "" {
		t.Skip("set FERRY_MEASURE=1 to measure")
	}
	for _, rate := range []float64{0, 1000} {
		for _, size := range sizes() {
			measure(t, size, rate)
		}
	}
	for _, size := range sizes() {
		measureBeside(t, size)
	}
}

// measureBeside prints the round trips of 200-byte messages on one stream
// while another carries a download (a media file) on the same session, at
// the default rate: what a chat waits behind. The download is a bulk
// stream (SetBulk), as a media one is.
func measureBeside(t *testing.T, size int) {
	ln := dnsListen(t)
	r := unbound.Start(t, "t.example.", ln.Addr().String(), unbound.Options{EDNSSize: size})
	d := dnsThrough(t, ln, 0, r.Addr)
	d.Cap = size
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	edge, origin := dialAccept(t, ctx, ln, d)
	defer edge.Close()
	defer origin.Close()

	dl := startDownload(t, ctx, edge, origin)
	<-dl.underway
	got := &dl.got

	go echo(ctx, origin)
	st, err := edge.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	msg := make([]byte, 200)
	var rtts []time.Duration
	start, got0 := time.Now(), got.Load()
	for i := range 8 {
		s := time.Now()
		st.Write(msg)
		if _, err := io.ReadFull(st, msg); err != nil {
			t.Fatalf("echo %d beside a download: %v", i, err)
		}
		rtts = append(rtts, time.Since(s))
		time.Sleep(time.Second)
	}
	t.Logf("EDNS %d: round trips beside a download, in order: %v", size, rtts)
	slices.Sort(rtts)
	t.Logf("EDNS %4d, default rate, beside a download: 200-byte RTT median %v max %v (download %.1f KB/s meanwhile)",
		size, rtts[len(rtts)/2].Round(time.Millisecond), rtts[len(rtts)-1].Round(time.Millisecond),
		float64(got.Load()-got0)/time.Since(start).Seconds()/1000)
}

func measure(t *testing.T, size int, rate float64) {
	ln := dnsListen(t)
	r := unbound.Start(t, "t.example.", ln.Addr().String(), unbound.Options{EDNSSize: size})
	d := dnsThrough(t, ln, rate, r.Addr)
	d.Cap = size
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	edge, origin := dialAccept(t, ctx, ln, d)
	defer edge.Close()
	defer origin.Close()
	srv := ln.Server()
	queries := func() int64 { return srv.TunnelQueries.Load() }

	// Down: the origin writes, the edge reads.
	const down, up = 512 << 10, 64 << 10
	st, in := streamPair(t, ctx, edge, origin)
	q0, start := queries(), time.Now()
	go func() {
		b := make([]byte, down)
		rand.Read(b)
		in.Write(b)
		in.CloseWrite()
	}()
	n, err := io.Copy(io.Discard, st)
	downTime := time.Since(start)
	t.Logf("EDNS %d: %d bytes down in %v (%v)", size, n, downTime, err)
	loadQPS := float64(queries()-q0) / downTime.Seconds()
	if n != down {
		t.Fatalf("read %d of %d bytes down", n, down)
	}
	// Up: the edge writes, the origin reads.
	start = time.Now()
	go func() {
		b := make([]byte, up)
		rand.Read(b)
		st.Write(b)
		st.CloseWrite()
	}()
	if n, err := io.Copy(io.Discard, in); n != up {
		t.Fatalf("read %d of %d bytes up: %v", n, up, err)
	}
	upTime := time.Since(start)
	t.Logf("EDNS %d: %d bytes up in %v", size, up, upTime)
	logCounters(t, d, ln)
	st.Close()
	in.Close()

	// Idle, then a 200-byte echo now and then, as a chat on an idle link.
	go echo(ctx, origin)
	st, err = edge.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	msg := make([]byte, 200)
	var rtts []time.Duration
	var idleQPS float64
	for i := range 8 {
		q0 := queries()
		time.Sleep(3 * time.Second) // idle, as a chat is between messages
		if i == 0 {
			idleQPS = float64(queries()-q0) / 3
		}
		start := time.Now()
		st.Write(msg)
		if _, err := io.ReadFull(st, msg); err != nil {
			logCounters(t, d, ln)
			t.Fatalf("echo %d: %v", i, err)
		}
		rtts = append(rtts, time.Since(start))
	}
	t.Logf("EDNS %d: round trips in order: %v", size, rtts)
	slices.Sort(rtts)
	name := "default rate"
	if rate > 0 {
		name = "rate 1000/s"
	}
	t.Logf("EDNS %4d, %s: down %5.1f KB/s, up %5.1f KB/s, 200-byte RTT median %v max %v, queries/s idle %.1f, under load %.0f",
		size, name, float64(down)/downTime.Seconds()/1000, float64(up)/upTime.Seconds()/1000,
		rtts[len(rtts)/2].Round(time.Millisecond), rtts[len(rtts)-1].Round(time.Millisecond), idleQPS, loadQPS)
}

// sizes are the answer sizes to measure: FERRY_MEASURE_SIZES or all three.
func sizes() []int {
	switch os.Getenv("FERRY_MEASURE_SIZES") {
	case "512":
		return []int{512}
	case "1232":
		return []int{1232}
	case "4096":
		return []int{4096}
	}
	return []int{512, 1232, 4096}
}
