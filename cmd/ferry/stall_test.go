package main

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ferry/internal/fake"
)

// gauge returns the value of the metric line that starts with series
// (NAME{LABELS}) on the admin endpoint at admin, or -1 when there is none.
func gauge(t *testing.T, admin, series string) float64 {
	t.Helper()
	_, body := httpGet(t, admin+"/metrics")
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// awaitGauge polls series until it is want, for up to limit, and returns
// how long that took; it fails the test at the limit.
func awaitGauge(t *testing.T, admin, series string, want float64, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for gauge(t, admin, series) != want {
		if time.Since(start) > limit {
			t.Fatalf("%s is %v after %v, want %v", series, gauge(t, admin, series), limit, want)
		}
		time.Sleep(50 * time.Millisecond) // polling the metrics, with a deadline
	}
	return time.Since(start)
}

// echoWithin connects a client to addr and checks that its echo comes back
// within limit.
func echoWithin(t *testing.T, addr string, limit time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, limit)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(limit))
	if _, err := io.WriteString(c, "ping"); err != nil {
		return err
	}
	b := make([]byte, 4)
	_, err = io.ReadFull(c, b)
	return err
}

// pongWatch is a TCP relay between an edge and a ws:// origin that signals
// each pong the origin sends on the session's control stream: a WebSocket
// binary message of one yamux data frame on stream 1 (the edge opens it
// first) of 9 bytes, the first of which is 2 (tunnel/control.go). It tells
// the test where the edge's ping cycle stands.
type pongWatch struct {
	addr  string
	pongs chan struct{}
}

// pongFrame is the pong's bytes up to its type; 0xff stands for any byte
// (yamux's flags).
var pongFrame = []byte{0x82, 21, 0, 0, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 9, 2}

func startPongWatch(t *testing.T, origin string) *pongWatch {
	w := &pongWatch{pongs: make(chan struct{}, 1)}
	srv := fake.Start(t, func(c net.Conn) {
		o, err := net.Dial("tcp", origin)
		if err != nil {
			return
		}
		defer o.Close()
		var wg sync.WaitGroup
		wg.Go(func() {
			io.Copy(o, c)
			o.Close()
		})
		var tail []byte
		buf := make([]byte, 32<<10)
		for {
			n, err := o.Read(buf)
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					break
				}
				tail = append(tail, buf[:n]...)
				if hasPong(tail) {
					select {
					case w.pongs <- struct{}{}:
					default:
					}
				}
				tail = tail[max(0, len(tail)-len(pongFrame)+1):]
			}
			if err != nil {
				break
			}
		}
		c.Close()
		wg.Wait()
	})
	w.addr = srv.Addr()
	return w
}

func hasPong(b []byte) bool {
	for i := 0; i+len(pongFrame) <= len(b); i++ {
		ok := true
		for j, p := range pongFrame {
			if p != 0xff && b[i+j] != p {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// TestStalledOriginGivenUp runs the binary: an edge over WebSocket to two
// origins, and the first origin's process is stopped (SIGSTOP) just after
// it answered a ping, the worst moment: the edge must report its session
// down within 10 s, and send new clients to the second origin.
func TestStalledOriginGivenUp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := build(t)
	echo := fake.Start(t, fake.Echo)
	stalledAddr, otherAddr, edgeAddr, adminAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	common := []string{"FERRY_SECRET=" + secret, "FERRY_ADMIN="}
	stalled := start(t, bin, append(common, "FERRY_ORIGIN_LISTEN=ws://"+stalledAddr+"/t", "FERRY_ORIGIN_TARGETS=chat="+echo.Addr()),
		"ferry origin starting", "origin")
	stalled.discardLines()
	t.Cleanup(func() { stalled.cmd.Process.Signal(syscall.SIGCONT) })
	other := start(t, bin, append(common, "FERRY_ORIGIN_LISTEN=ws://"+otherAddr+"/t", "FERRY_ORIGIN_TARGETS=chat="+echo.Addr()),
		"ferry origin starting", "origin")
	other.discardLines()
	watch := startPongWatch(t, stalledAddr)
	stalledURL := "ws://" + watch.addr + "/t"
	edg := start(t, bin, append(common, "FERRY_EDGE_LISTEN=tcp://"+edgeAddr+"/chat?decoy=off", "FERRY_EDGE_POOL=1",
		"FERRY_EDGE_ORIGINS="+stalledURL+",ws://"+otherAddr+"/t", "FERRY_ADMIN="+adminAddr), "ferry edge starting", "edge")
	edg.discardLines()
	admin := "http://" + adminAddr
	stalledUp := `ferry_tunnel_sessions_up{peer="` + stalledURL + `"}`
	awaitGauge(t, admin, stalledUp, 1, 10*time.Second)
	awaitGauge(t, admin, `ferry_tunnel_sessions_up{peer="ws://`+otherAddr+`/t"}`, 1, 10*time.Second)
	if err := echoWithin(t, edgeAddr, 2*time.Second); err != nil {
		t.Fatalf("before the stall: %v", err)
	}

	// Stop the origin right after a pong: the edge's next ping is a
	// KeepAlive away.
	select {
	case <-watch.pongs: // perhaps an old one
	default:
	}
	<-watch.pongs
	if err := stalled.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stop := time.Now()
	const limit = 10 * time.Second
	took := awaitGauge(t, admin, stalledUp, 0, 2*limit)
	t.Logf("the stalled origin's session was reported down %v after the stop", took.Round(10*time.Millisecond))
	if took > limit {
		t.Errorf("the stalled origin's session was given up after %v, want within %v", took.Round(10*time.Millisecond), limit)
	}
	if code, _ := httpGet(t, admin+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with the other origin up: %d", code)
	}
	// New clients go to the other origin, not into the stalled session.
	for i := range 3 {
		if err := echoWithin(t, edgeAddr, 2*time.Second); err != nil {
			t.Errorf("client %d after the stalled session was given up (%v after the stop): %v", i, time.Since(stop).Round(10*time.Millisecond), err)
		}
	}
}
