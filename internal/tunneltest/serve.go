package tunneltest

import (
	"context"
	"io"
	"sync"

	"ferry/tunnel"
)

// Serve accepts s's streams until s ends, and runs handle on each on a
// goroutine of its own, closing the stream after; it returns once every
// handle has. Closing either session of the pair ends it: the streams
// are then reset, so that a handle blocked on one returns.
func Serve(s tunnel.Session, handle func(tunnel.Stream)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := s.AcceptStream(context.Background())
		if err != nil {
			return
		}
		wg.Go(func() {
			defer st.Close()
			handle(st)
		})
	}
}

// Discard is a handler for Serve that reads a stream to its end and
// answers nothing: an origin that takes the header and the first bytes,
// and never replies.
func Discard(st tunnel.Stream) { io.Copy(io.Discard, st) }
