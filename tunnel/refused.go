package tunnel

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"ferry/internal/redact"
)

// RefusedEvery is how often at most a listener logs at info how many
// handshakes it refused.
const RefusedEvery = time.Minute

// refusals logs the handshakes a tunnel listener refuses: strangers' for
// the most part (scanners, probers), which may come by the thousand, so
// each is logged at debug only, and one line at info says how many there
// were, a minute after the first of them, at most once a minute. The line
// holds no address. The timer is time's, so that testing/synctest's clock
// drives it in tests.
type refusals struct {
	log       *slog.Logger
	transport string // ws, wss or quic, for the summary line
	clientIPs bool   // End.LogClientIPs

	mu     sync.Mutex
	n      int64
	timer  *time.Timer // set while refusals are being counted
	closed bool
}

// refused logs one refused handshake, from client, at debug, and counts it
// for the next summary. The client's address is taken out of err's text
// unless the operator asked for clients' addresses.
func (r *refusals) refused(msg string, err error, client netip.Addr) {
	if r.log.Enabled(context.Background(), slog.LevelDebug) {
		var addr slog.Attr
		if r.clientIPs && client.IsValid() {
			addr = slog.String("client", client.String())
		}
		r.log.Debug(msg, redact.Err(err, r.clientIPs, client), addr)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.n++
	if r.timer == nil {
		r.timer = time.AfterFunc(RefusedEvery, r.summarize)
	}
}

// summarize logs how many handshakes were refused since the count started.
func (r *refusals) summarize() {
	r.mu.Lock()
	n := r.n
	r.n, r.timer = 0, nil
	r.mu.Unlock()
	r.summary(n)
}

func (r *refusals) summary(n int64) {
	if n > 0 {
		r.log.Info(fmt.Sprintf("%d tunnel handshakes refused in the last minute", n), "refused", n, "transport", r.transport)
	}
}

// close stops counting, and logs what was counted and not yet said.
func (r *refusals) close() {
	r.mu.Lock()
	r.closed = true
	var n int64
	if r.timer != nil && r.timer.Stop() {
		n = r.n
	}
	r.n, r.timer = 0, nil
	r.mu.Unlock()
	r.summary(n)
}
