package e2e

import (
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"ferry/internal/fake"
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

// BenchmarkThroughput measures client-to-sink throughput over 1 and over 8
// concurrent streams.
func BenchmarkThroughput(b *testing.B) {
	done := make(chan int64, 8)
	sink := func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		done <- n
	}
	benchPaths(b, sink, func(b *testing.B, addr string) {
		for _, streams := range []int{1, 8} {
			b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
				conns := make([]*net.TCPConn, streams)
				for i := range conns {
					c, err := clientDialer.Dial("tcp", addr)
					if err != nil {
						b.Fatal(err)
					}
					conns[i] = c.(*net.TCPConn)
					// An edge connects a client once it has said something.
					if _, err := c.Write([]byte{0}); err != nil {
						b.Fatal(err)
					}
				}
				buf := make([]byte, 128<<10)
				b.SetBytes(int64(len(buf)))
				b.ReportAllocs()
				b.ResetTimer()
				var wg sync.WaitGroup
				for i, c := range conns {
					wg.Add(1)
					go func() {
						defer wg.Done()
						// Writer i sends every streams-th chunk of b.N.
						for j := i; j < b.N; j += streams {
							if _, err := c.Write(buf); err != nil {
								b.Error(err)
								return
							}
						}
						c.CloseWrite()
					}()
				}
				wg.Wait()
				var total int64
				for range conns {
					total += <-done
				}
				b.StopTimer()
				for _, c := range conns {
					c.Close()
				}
				if want := int64(b.N*len(buf) + streams); total != want {
					b.Fatalf("sink read %d bytes, want %d", total, want)
				}
			})
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
			c, err := clientDialer.Dial("tcp", addr)
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
