package bench

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"
)

// upload sends total bytes to the sink over streams connections at once,
// and returns MB/s until the sink has counted them all.
func upload(addr string, streams int, total int64, limit time.Duration) (float64, error) {
	per := total / int64(streams)
	buf := make([]byte, 256<<10)
	return concurrently(addr, streams, limit, per, func(c net.Conn) error {
		for left := per; left > 0; {
			n, err := c.Write(buf[:min(left, int64(len(buf)))])
			if err != nil {
				return err
			}
			left -= int64(n)
		}
		c.(*net.TCPConn).CloseWrite()
		var got int64
		if err := binary.Read(c, binary.BigEndian, &got); err != nil {
			return fmt.Errorf("sink's count: %w", err)
		}
		if got != per {
			return fmt.Errorf("sink counted %d bytes of %d", got, per)
		}
		return nil
	})
}

// download asks the source for total bytes over streams connections at
// once, and returns MB/s until the last byte is in.
func download(addr string, streams int, total int64, limit time.Duration) (float64, error) {
	per := total / int64(streams)
	return concurrently(addr, streams, limit, per, func(c net.Conn) error {
		if err := binary.Write(c, binary.BigEndian, per); err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, c)
		if err == nil && n != per {
			err = fmt.Errorf("got %d bytes of %d", n, per)
		}
		return err
	})
}

// concurrently runs f on n connections to addr at once, each bounded by
// limit and moving per bytes, and returns MB/s over them all.
func concurrently(addr string, n int, limit time.Duration, per int64, f func(c net.Conn) error) (float64, error) {
	errs := make(chan error, n)
	start := time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(limit))
			errs <- f(c)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return float64(per*int64(n)) / elapsed.Seconds() / 1e6, nil
}

// opening is 64 bytes shaped as a WhatsApp chat client's first (WA 06 03,
// then a 57-byte frame starting 0x12), so that an edge's first-byte routing
// takes the echo clients for WhatsApp's.
func opening() []byte {
	b := make([]byte, 64)
	copy(b, "WA\x06\x03\x00\x00\x39\x12")
	return b
}

// setup connects n times in a row, echoes a 64-byte opening each time, and
// returns the median and 99th percentile in milliseconds.
func setup(addr string, n int) (p50, p99 float64, err error) {
	msg := opening()
	got := make([]byte, len(msg))
	ds := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return 0, 0, err
		}
		_, err = c.Write(msg)
		if err == nil {
			_, err = io.ReadFull(c, got)
		}
		ds = append(ds, time.Since(start))
		c.Close()
		if err != nil {
			return 0, 0, err
		}
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return ms(ds[len(ds)/2]), ms(ds[len(ds)*99/100]), nil
}

// openIdle opens echo clients until conns holds n, each after one 64-byte
// opening echoed (and first a TLS handshake when tlsClients is set), and returns
// conns.
func openIdle(addr string, tlsClients bool, conns []net.Conn, n int) ([]net.Conn, error) {
	need := n - len(conns)
	if need <= 0 {
		return conns, nil
	}
	const workers = 16
	out := make(chan net.Conn, need)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	next := make(chan struct{}, need)
	for range need {
		next <- struct{}{}
	}
	close(next)
	for range workers {
		wg.Go(func() {
			msg := opening()
			for range next {
				c, err := net.Dial("tcp", addr)
				if err == nil && tlsClients {
					// The edge's certificate is its own self-signed one.
					c = tls.Client(c, &tls.Config{InsecureSkipVerify: true})
				}
				if err == nil {
					if _, err = c.Write(msg); err == nil {
						_, err = io.ReadFull(c, msg)
					}
				}
				if err != nil {
					if c != nil {
						c.Close()
					}
					errs <- err
					return
				}
				out <- c
			}
		})
	}
	wg.Wait()
	close(out)
	for c := range out {
		conns = append(conns, c)
	}
	select {
	case err := <-errs:
		return conns, err
	default:
	}
	return conns, nil
}

// delayTCP relays TCP connections to target, delaying each direction by
// d without limiting its rate: a long, fat link.
func delayTCP(target string, d time.Duration) (string, io.Closer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	go serve(ln, func(c net.Conn) {
		up, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer up.Close()
		done := make(chan struct{}, 2)
		go func() { delayCopy(up, c, d); done <- struct{}{} }()
		go func() { delayCopy(c, up, d); done <- struct{}{} }()
		<-done
		c.Close()
		up.Close()
		<-done
	})
	return ln.Addr().String(), ln, nil
}

type timed struct {
	due  time.Time
	data []byte
}

// delayCopy copies src to dst, each chunk d after it was read.
func delayCopy(dst, src net.Conn, d time.Duration) {
	q := make(chan timed, 1<<16)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- timed{time.Now().Add(d), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for t := range q {
		waitUntil(t.due)
		if _, err := dst.Write(t.data); err != nil {
			src.Close()
			for range q {
			}
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// delayUDP relays datagrams to target, delaying each direction by d. Like a
// NAT, it gives each client address a socket of its own towards target, so
// that the answers of each QUIC connection (an edge keeps two) go back to
// the socket it came from.
func delayUDP(target string, d time.Duration) (string, io.Closer, error) {
	front, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	// A burst larger than the default buffers would be lost here, and the
	// link would measure loss, not length.
	bigBuffers(front.(syscall.Conn))
	toTarget := make(chan timedTo, 1<<16)
	toClient := make(chan timedTo, 1<<16)
	var mu sync.Mutex
	backs := map[string]net.Conn{}
	all := closers{front}
	go func() {
		defer close(toTarget)
		for {
			buf := make([]byte, 2048)
			n, from, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			back, ok := backs[from.String()]
			if !ok {
				if back, err = net.Dial("udp", target); err != nil {
					mu.Unlock()
					continue
				}
				bigBuffers(back.(syscall.Conn))
				backs[from.String()] = back
				all = append(all, back)
				go func() {
					for {
						buf := make([]byte, 2048)
						n, err := back.Read(buf)
						if err != nil {
							return
						}
						toClient <- timedTo{timed{time.Now().Add(d), buf[:n]}, from, nil}
					}
				}()
			}
			mu.Unlock()
			toTarget <- timedTo{timed{time.Now().Add(d), buf[:n]}, nil, back}
		}
	}()
	go func() {
		for t := range toTarget {
			waitUntil(t.due)
			t.back.Write(t.data)
		}
	}()
	go func() {
		for t := range toClient {
			waitUntil(t.due)
			front.WriteTo(t.data, t.to)
		}
	}()
	return front.LocalAddr().String(), closerFunc(func() error {
		mu.Lock()
		defer mu.Unlock()
		return all.Close()
	}), nil
}

// timedTo is a datagram due at a time, for a client or towards the target.
type timedTo struct {
	timed
	to   net.Addr
	back net.Conn
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

type closers []io.Closer

func (cs closers) Close() error {
	for _, c := range cs {
		c.Close()
	}
	return nil
}

// Write prints r as tables, each figure beside its baseline.
func (r *Report) Write(w io.Writer) {
	fmt.Fprintf(w, "machine: %s, %s\none hop: %s\n\n", r.Machine, r.Go, r.OneHop)
	var direct, hop Path
	for _, p := range r.Paths {
		switch p.Name {
		case "direct":
			direct = p
		case "one-hop":
			hop = p
		}
	}
	ratio := func(v, base float64) string {
		if base == 0 {
			return ""
		}
		return fmt.Sprintf(" (%.2f×)", v/base)
	}
	if len(r.Paths) > 0 {
		r.writePaths(w, direct, hop, ratio)
	}
	if len(r.Sessions) > 0 {
		r.writeSessions(w)
	}
	if len(r.Idle) > 0 {
		fmt.Fprintf(w, "\nidle clients, over             %-10s %-12s %-12s %-12s %-12s %-14s %s\n", "conns", "edge RSS", "origin RSS", "edge KiB/c", "origin KiB/c", "edge gor/c", "origin gor/c")
		for _, i := range r.Idle {
			fmt.Fprintf(w, "  %-28s %-10d %-12s %-12s %-12.1f %-12.1f %-14.2f %.2f\n", i.Transport+", "+i.Clients+" clients", i.Conns,
				fmt.Sprintf("%d MiB", i.EdgeRSS>>10), fmt.Sprintf("%d MiB", i.OriginRSS>>10), i.EdgeKiB, i.OriginKiB, i.EdgeGor, i.OriginGor)
		}
	}
	if len(r.IPerf3) > 0 || r.IPerf3Note != "" {
		fmt.Fprintf(w, "\niperf3, one stream (× HAProxy)  %-18s %-18s %-16s %-16s %s\n", "up MB/s", "down MB/s", "edge s/GB", "origin s/GB", "GB per CPU-second")
		var base IPerf3
		for _, p := range r.IPerf3 {
			if p.Path == "one-hop" {
				base = p
			}
		}
		for _, p := range r.IPerf3 {
			fmt.Fprintf(w, "  %-28s %-18s %-18s %-16.3f %-16.3f %.2f%s\n", p.Path,
				fmt.Sprintf("%.0f%s", p.Up1, ratio(p.Up1, base.Up1)), fmt.Sprintf("%.0f%s", p.Down1, ratio(p.Down1, base.Down1)),
				p.CPUEdge, p.CPUOrigin, p.GBPerCPUSecond, ratio(p.GBPerCPUSecond, base.GBPerCPUSecond))
		}
		if r.IPerf3Note != "" {
			fmt.Fprintf(w, "  %s\n", r.IPerf3Note)
		}
	}
	if len(r.NonReaders) > 0 {
		fmt.Fprintf(w, "\nclients that stop reading      %-10s %-14s %s\n", "clients", "edge RSS", "edge RSS with them")
		for _, n := range r.NonReaders {
			fmt.Fprintf(w, "  %-28s %-10d %-14s %s\n", n.Transport+" ("+n.Ferry+")", n.Clients,
				fmt.Sprintf("%d MiB", n.EdgeRSS0>>10), fmt.Sprintf("%d MiB", n.EdgeRSS>>10))
		}
	}
	if len(r.Strangers) > 0 {
		fmt.Fprintf(w, "\nstrangers' QUIC handshakes      %-10s %-24s %s\n", "ALPN", "outcome", "server CPU ms each (× quic-go's HTTP/3 server)")
		for _, s := range r.Strangers {
			fmt.Fprintf(w, "  %-29s %-10s %-24s %.3f%s\n", s.Server, s.ALPN, s.Outcome, s.CPUms, ratio(s.XHTTP3, 1))
		}
	}
	if len(r.LongLink) == 0 {
		return
	}
	fmt.Fprintf(w, "\none stream, %v round trip      %-10s %-10s %s\n", LongRTT, "up MB/s", "down MB/s", "window/RTT bound")
	for _, l := range r.LongLink {
		fmt.Fprintf(w, "  %-28s %-10.1f %-10.1f %.1f MB/s", l.Transport, l.Up, l.Down, l.Bound)
		if l.Err != "" {
			fmt.Fprintf(w, "  failed: %s", l.Err)
		}
		fmt.Fprintln(w)
	}
}

// writePaths prints the paths' throughput, setup and CPU tables.
func (r *Report) writePaths(w io.Writer, direct, hop Path, ratio func(v, base float64) string) {
	fmt.Fprintf(w, "throughput, MB/s (× one hop)  %-18s %-18s %-18s %-18s\n", "up, 1 stream", "down, 1 stream", "up, 8 streams", "down, 8 streams")
	for _, p := range r.Paths {
		fmt.Fprintf(w, "  %-28s %-18s %-18s %-18s %-18s\n", p.Name,
			fmt.Sprintf("%.0f%s", p.Up1, ratio(p.Up1, hop.Up1)), fmt.Sprintf("%.0f%s", p.Down1, ratio(p.Down1, hop.Down1)),
			fmt.Sprintf("%.0f%s", p.Up8, ratio(p.Up8, hop.Up8)), fmt.Sprintf("%.0f%s", p.Down8, ratio(p.Down8, hop.Down8)))
	}
	fmt.Fprintf(w, "\nsetup (connect, 64-byte echo)  %-10s %-10s %-18s %s\n", "p50 ms", "p99 ms", "p50 above direct", "context switches per connection")
	for _, p := range r.Paths {
		fmt.Fprintf(w, "  %-28s %-10.3f %-10.3f %-18s", p.Name, p.SetupP50, p.SetupP99, fmt.Sprintf("%+.3f ms", p.SetupP50-direct.SetupP50))
		if p.SetupSwitches > 0 {
			fmt.Fprintf(w, " %.1f", p.SetupSwitches)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nCPU, one stream each way       %-16s %-16s %s\n", "edge s/GB", "origin s/GB", "GB per CPU-second")
	for _, p := range r.Paths {
		if p.GBPerCPUSecond > 0 {
			fmt.Fprintf(w, "  %-28s %-16.3f %-16.3f %.2f\n", p.Name, p.CPUEdge, p.CPUOrigin, p.GBPerCPUSecond)
		}
	}
}

// bigBuffers asks for 16 MiB socket buffers, past net.core.rmem_max where
// the process may (as root).
func bigBuffers(c syscall.Conn) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		for _, opt := range []int{syscall.SO_RCVBUFFORCE, syscall.SO_SNDBUFFORCE} {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, 16<<20)
		}
	})
}

// waitUntil sleeps until due, unless that is under a millisecond away: a
// sleep that short lasts about a millisecond anyway, and one per packet
// would cap the link at a thousand packets a second.
func waitUntil(due time.Time) {
	if d := time.Until(due); d > time.Millisecond {
		time.Sleep(d)
	}
}
