package tunnel

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// countConn takes what is written to it.
type countConn struct {
	net.Conn
	n atomic.Int64
}

func (c *countConn) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// frame is a yamux frame of typ on stream id with a body of n bytes.
func frame(typ byte, id uint32, n int) []byte {
	b := make([]byte, yamuxHeader+n)
	b[1] = typ
	binary.BigEndian.PutUint32(b[4:8], id)
	binary.BigEndian.PutUint32(b[8:12], uint32(n))
	return b
}

// TestPacer checks that a bulk stream's writes wait while more than
// bulkQueued of its bytes have not gone through to the transport, go on as
// they do, and stop at the session's end, at the write deadline and at
// the stream's close; and that paceConn counts only the data frames of
// streams paced and open.
func TestPacer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pc := newPaceConn(&countConn{})
		done := make(chan struct{})
		p := newPacer(pc, 3, done)
		// yamux: what the stream writes is queued, and its send loop
		// hands the frames to the transport when the test says.
		queue := make(chan []byte, 1000)
		write := func(b []byte) (int, error) {
			if len(b) > bulkFrame {
				t.Errorf("a frame of %d bytes, want at most %d", len(b), bulkFrame)
			}
			queue <- frame(yamuxTypeData, 3, len(b))
			return len(b), nil
		}
		send := func(n int) {
			for range n {
				pc.Write(<-queue)
			}
		}
		noDeadline := func() time.Time { return time.Time{} }
		var wrote atomic.Int64
		errc := make(chan error, 1)
		go func() {
			n, err := p.write(make([]byte, 64<<10), write, noDeadline)
			wrote.Store(int64(n))
			errc <- err
		}()
		synctest.Wait()
		if q := len(queue) * bulkFrame; q > bulkQueued+bulkFrame {
			t.Fatalf("%d bytes queued in yamux, want at most %d", q, bulkQueued+bulkFrame)
		}
		// Other streams' frames, and other types, count for nothing.
		pc.Write(frame(yamuxTypeData, 5, 100))
		pc.Write(frame(1, 3, 100)) // a window update
		synctest.Wait()
		if sent, _ := pc.through(3); sent != 0 {
			t.Fatalf("through = %d before any of the stream's frames went", sent)
		}
		for len(queue) > 0 {
			send(1)
			synctest.Wait()
		}
		if err := <-errc; err != nil || wrote.Load() != 64<<10 {
			t.Fatalf("wrote %d, %v", wrote.Load(), err)
		}

		// The session ends while a write waits.
		go func() {
			_, err := p.write(make([]byte, 64<<10), write, noDeadline)
			errc <- err
		}()
		synctest.Wait()
		close(done)
		if err := <-errc; !errors.Is(err, ErrSessionEnded) {
			t.Errorf("write at the session's end: %v", err)
		}

		// A deadline passes while a write waits.
		written := p.written
		p = newPacer(pc, 3, make(chan struct{}))
		p.written = written
		deadline := time.Now().Add(time.Second)
		start := time.Now()
		_, err := p.write(make([]byte, 64<<10), write, func() time.Time { return deadline })
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || time.Since(start) != time.Second {
			t.Errorf("write past its deadline: %v after %v", err, time.Since(start))
		}

		// The stream is closed while a write waits.
		go func() {
			_, err := p.write(make([]byte, 64<<10), write, noDeadline)
			errc <- err
		}()
		synctest.Wait()
		p.close()
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Errorf("write at the stream's close: %v", err)
		}
		pc.Write(frame(yamuxTypeData, 3, 100))
		if sent, _ := pc.through(3); sent != 0 {
			t.Errorf("a closed stream still counted")
		}
	})
}

// TestDNSChatBesideDownload checks, over a dns session straight to the
// origin's server, that a chat message waits behind a bounded part of a
// media download on the same session: the download's bytes that arrive
// between the message and its echo stay within what kcp's window and the
// pacer let through, well under yamux's 256 KiB window. Bytes, not time: the
// bound holds however slow the machine.
func TestDNSChatBesideDownload(t *testing.T) {
	ln := dnsListen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	edge, origin := dialAccept(t, ctx, ln, dnsThrough(t, ln, testRate))
	defer edge.Close()
	defer origin.Close()

	dl := startDownload(t, ctx, edge, origin)
	select {
	case <-dl.underway:
	case <-ctx.Done():
		t.Fatalf("the download stalled at %d bytes", dl.got.Load())
	}

	go echo(ctx, origin)
	st, err := edge.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	msg := make([]byte, 200)
	// The bound: kcp's window (64 of the origin's datagrams, under 1 KiB
	// each), the frames the pacer lets into yamux, and what the edge had
	// received but not yet counted: under half of yamux's 256 KiB window,
	// which an unpaced download keeps full (measured: up to 256 KiB behind
	// without SetBulk, under 90 KiB with it).
	const limit = 128 << 10
	for i := range 5 {
		before := dl.got.Load()
		st.Write(msg)
		if _, err := io.ReadFull(st, msg); err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
		if behind := dl.got.Load() - before; behind > limit {
			t.Errorf("echo %d came after %d bytes of the download, want at most %d", i, behind, limit)
		}
	}
}

// download is a media download on a stream of its own: the origin writes
// (a bulk stream, as it marks a media one), the edge reads, until the test
// ends. got counts what the edge read; underway is closed once 512 KiB
// came, the queues full by then.
type download struct {
	got      atomic.Int64
	underway chan struct{}
}

func startDownload(t *testing.T, ctx context.Context, edge, origin Session) *download {
	t.Helper()
	bulk, in := streamPair(t, ctx, edge, origin)
	SetBulk(in)
	dl := &download{underway: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() {
		b := make([]byte, 16<<10)
		for {
			if _, err := in.Write(b); err != nil {
				return
			}
		}
	})
	wg.Go(func() {
		b := make([]byte, 32<<10)
		for {
			n, err := bulk.Read(b)
			if dl.got.Add(int64(n)) >= 512<<10 && dl.got.Load()-int64(n) < 512<<10 {
				close(dl.underway)
			}
			if err != nil {
				return
			}
		}
	})
	t.Cleanup(func() {
		bulk.Close()
		in.Close()
		wg.Wait()
	})
	return dl
}

// streamPair opens a stream on edge and returns it with the origin's end of
// it, once a first byte has crossed.
func streamPair(t *testing.T, ctx context.Context, edge, origin Session) (Stream, Stream) {
	t.Helper()
	st, err := edge.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte{1})
	in, err := origin.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(in, make([]byte, 1))
	return st, in
}
