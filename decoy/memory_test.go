package decoy

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestIdleMemory measures what the process holds per connection that a
// stranger leaves open, idle after one request or in the middle of 40 KB
// of headers, with the decoy and, as the baseline in the same run, a bare
// net/http server serving the same page. The decoy must stay within tens
// of KiB a connection.
func TestIdleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens hundreds of connections")
	}
	const n = 200
	page := New(Options{Seed: []byte("memory")})
	measure := func(t *testing.T, srv *http.Server, wrap func(net.Listener) net.Listener, send string, answered bool) float64 {
		ln := listenTCP(t)
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.Serve(wrap(ln))
		}()
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if srv.Shutdown(ctx) != nil {
				srv.Close()
			}
			<-done
		}()
		before := inUse()
		conns := make([]net.Conn, 0, n)
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		buf := make([]byte, 64<<10)
		for range n {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			if _, err := io.WriteString(c, send); err != nil {
				t.Fatal(err)
			}
			if answered {
				// The whole page, then the connection stays, idle.
				var got []byte
				for !bytes.Contains(got, []byte("</html>")) {
					k, err := c.Read(buf)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got[:0], buf[:k]...)
				}
			}
		}
		if !answered {
			// The server has read all of it: one more request on a
			// fresh connection is answered after the others were taken.
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
			io.ReadAll(c)
			c.Close()
		}
		return float64(inUse()-before) / n
	}
	headers := "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("b", 1000)+"\r\n", 40)
	for _, c := range []struct {
		name     string
		send     string
		answered bool
	}{
		{"idle after a request", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
		{"in the middle of 40 KB of headers", headers, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Each twice, alternating, and the second of each kept: the
			// first run of a process warms pools and caches.
			var base, got float64
			for range 2 {
				base = measure(t, &http.Server{Handler: page, ErrorLog: discardLogger()}, func(l net.Listener) net.Listener { return l }, c.send, c.answered)
				got = measure(t, NewServer(page, nil), Listener, c.send, c.answered)
			}
			t.Logf("%s: %.1f KiB a connection, bare net/http %.1f KiB (%.2fx)", c.name, got/1024, base/1024, got/base)
			if got > 64<<10 {
				t.Errorf("%.1f KiB a connection", got/1024)
			}
		})
	}
}

// inUse is the heap and the stacks in use, after a collection.
func inUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}
