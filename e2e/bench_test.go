package e2e

import (
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/ferryproxy/ferry/internal/fake"
)

// benchPaths runs f against a direct connection to the server and through
// an edge and an origin over each transport, so that each figure has its
// baseline in the same run.
func benchPaths(b *testing.B, handle func(net.Conn), f func(b *testing.B, addr string)) {
	srv := fake.Start(b, handle)
	b.Run("direct", func(b *testing.B) { f(b, srv.Addr()) })
	for _, scheme := range transports {
		b.Run(scheme, func(b *testing.B) {
			o := startOrigin(b, scheme, "127.0.0.1:0", map[string][]string{"chat": {srv.Addr()}})
			e := startEdge(b, o.url, "chat")
			f(b, e.addrs["chat"])
		})
	}
}

// BenchmarkThroughput measures one stream, client to sink.
func BenchmarkThroughput(b *testing.B) {
	done := make(chan int64, 1)
	sink := func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		done <- n
	}
	benchPaths(b, sink, func(b *testing.B, addr string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 128<<10)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		c.(*net.TCPConn).CloseWrite()
		n := <-done
		b.StopTimer()
		c.Close()
		if n != int64(b.N*len(buf)) {
			b.Fatalf("sink read %d bytes, want %d", n, b.N*len(buf))
		}
	})
}

// BenchmarkSetup measures a new client connection: connect, then a 64-byte
// echo. It reports the median and 99th percentile.
func BenchmarkSetup(b *testing.B) {
	benchPaths(b, fake.Echo, func(b *testing.B, addr string) {
		msg := make([]byte, 64)
		times := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := echoOnce(c, msg); err != nil {
				b.Fatal(err)
			}
			times = append(times, time.Since(start))
			c.Close()
		}
		b.StopTimer()
		slices.Sort(times)
		b.ReportMetric(float64(times[len(times)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(times[len(times)*99/100].Microseconds()), "p99-µs")
	})
}
