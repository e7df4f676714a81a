package e2e

import (
	"io"
	"net"
	"testing"
	"time"

	"ferry/internal/fake"
	"ferry/relay"
)

// TestStalledUploadEnds checks, over every transport, that an upload to a
// target that stopped reading ends soon after its client resets: the
// edge's relay, blocked writing into the stream, sees the client's reset
// without reading, and the origin's, blocked writing to the target, sees
// the stream's; neither holds its buffers until the idle timeout.
func TestStalledUploadEnds(t *testing.T) {
	forEachTransport(t, func(t *testing.T, scheme string) {
		hold := make(chan struct{})
		target := fake.Start(t, func(c net.Conn) {
			b := make([]byte, 1)
			if _, err := io.ReadFull(c, b); err != nil {
				return
			}
			c.Write([]byte("y"))
			<-hold // reading no more
		})
		defer close(hold)
		o := startOrigin(t, scheme, "127.0.0.1:0", map[string][]string{"chat": {target.Addr()}})
		e := startEdge(t, o.url, "chat")
		c := e.dial(t, "chat")
		if _, err := echoOnce(c, []byte("x")); err != nil {
			t.Fatal(err)
		}
		fillUpload(t, c)
		c.SetLinger(0)
		c.Close()
		deadline := time.Now().Add(5 * relay.StallCheck)
		for o.srv.Stats().Streams > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the origin still relays the upload %v after its client's reset", 5*relay.StallCheck)
			}
			time.Sleep(10 * time.Millisecond) // polling a gauge
		}
	})
}

// fillUpload writes to c until its writes block: every buffer up to the
// target is full.
func fillUpload(t *testing.T, c net.Conn) {
	t.Helper()
	chunk := make([]byte, 64<<10)
	for {
		c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Write(chunk); err != nil {
			c.SetWriteDeadline(time.Time{})
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				t.Fatalf("uploading: %v", err)
			}
			return
		}
	}
}
