package edge

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"ferry/check"
	"ferry/internal/fake"
)

// BenchmarkClassify is the CPU that first-byte routing costs a connection:
// telling its first read apart.
func BenchmarkClassify(b *testing.B) {
	for name, in := range map[string][]byte{
		"native": fake.OpeningNative,
		"web":    fake.OpeningWeb,
		"http":   []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Classify(in)
			}
		})
	}
}

// BenchmarkTLSSetup is a WhatsApp-like client's setup through a tls
// listener: TCP connect, TLS handshake, the chat opening, and the WhatsApp
// server's answer. It alternates between a listener with ?decoy=off (the
// relay as it was before first-byte routing) and one routed by first bytes
// and ClientHello, so that both are measured in the same run, and reports
// each one's median and 99th percentile.
func BenchmarkTLSSetup(b *testing.B) {
	wa := fake.Start(b, fake.WhatsApp)
	srv := &Server{
		TLS:        &tls.Config{Certificates: []tls.Certificate{mustCert(b)}},
		MediaNames: []string{"*.whatsapp.net"},
		Log:        slog.New(slog.DiscardHandler),
		Connect: Direct(func(ctx context.Context, _, _ string, _ netip.AddrPort) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", wa.Addr())
		}),
	}
	var addrs []string
	for _, off := range []bool{true, false} {
		ln := listenLoopback(b)
		addrs = append(addrs, ln.Addr().String())
		srv.Listeners = append(srv.Listeners, Listener{Listener: ln, Route: "chat", TLS: true, DecoyOff: off})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Grace = time.Second
		srv.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	answer := make([]byte, len(check.ServerHello()))
	conf := &tls.Config{InsecureSkipVerify: true}
	once := func(addr string) time.Duration {
		start := time.Now()
		c, err := tls.Dial("tcp", addr, conf)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(fake.OpeningWeb); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, answer); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var off, routed []time.Duration
	for b.Loop() {
		off = append(off, once(addrs[0]))
		routed = append(routed, once(addrs[1]))
	}
	ms := func(ds []time.Duration, q float64) float64 {
		slices.Sort(ds)
		return float64(ds[int(float64(len(ds)-1)*q)]) / float64(time.Millisecond)
	}
	b.ReportMetric(ms(off, 0.5), "off-p50-ms")
	b.ReportMetric(ms(off, 0.99), "off-p99-ms")
	b.ReportMetric(ms(routed, 0.5), "routed-p50-ms")
	b.ReportMetric(ms(routed, 0.99), "routed-p99-ms")
}
