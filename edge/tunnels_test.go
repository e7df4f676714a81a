package edge

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"

	"go.uber.org/goleak"

	"github.com/ferryproxy/ferry/internal/tunneltest"
	"github.com/ferryproxy/ferry/tunnel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestClientAddressOnlyWhenAsked checks that a client's address goes into
// the stream header only for an origin that asked for it.
func TestClientAddressOnlyWhenAsked(t *testing.T) {
	client := netip.MustParseAddrPort("203.0.113.5:5555")
	for _, asked := range []bool{false, true} {
		sess, originSess := tunneltest.Pair(tunneltest.Options{ClientAddress: asked})
		tun := &Tunnels{Origins: []tunnel.Peer{{Name: "test", Dialer: tunneltest.Sessions(sess)}}, Pool: 1, Log: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan struct{})
		go func() {
			tun.Run(ctx)
			close(ran)
		}()
		st, err := tun.open(ctx, "chat", "", client, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The header goes out with the client's first bytes.
		if _, err := st.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		far, err := originSess.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		h, err := tunnel.ReadHeader(far)
		far.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want := (tunnel.Header{Route: "chat"}); asked {
			want.Client = client
			if h != want {
				t.Errorf("asked: header %+v, want %+v", h, want)
			}
		} else if h != want {
			t.Errorf("not asked: header %+v, want %+v", h, want)
		}
		st.Close()
		cancel()
		<-ran
	}
}

// TestPoolLeastBusy checks that an origin gets Pool sessions and that new
// streams go to the one with the fewest.
func TestPoolLeastBusy(t *testing.T) {
	// Each dial makes a new session, to an origin that reads and drops
	// what streams carry.
	d := &tunneltest.Dialer{Next: func(context.Context) (tunnel.Session, error) {
		sess, originSess := tunneltest.Pair(tunneltest.Options{})
		go tunneltest.Serve(originSess, tunneltest.Discard)
		return sess, nil
	}}
	tun := &Tunnels{Origins: []tunnel.Peer{{Name: "o", Dialer: d}}, Pool: 3, Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		tun.Run(ctx)
		close(ran)
	}()
	for {
		changed := tun.Changed()
		tun.mu.Lock()
		up := 0
		for _, sl := range tun.slots {
			if sl.cur != nil {
				up++
			}
		}
		tun.mu.Unlock()
		if up == 3 {
			break
		}
		<-changed
	}
	var streams []*stream
	for range 6 {
		st, err := tun.open(ctx, "chat", "", netip.AddrPort{}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	tun.mu.Lock()
	for _, sl := range tun.slots {
		if sl.cur.streams != 2 {
			t.Errorf("a session has %d streams, want 2", sl.cur.streams)
		}
	}
	tun.mu.Unlock()
	for _, st := range streams {
		st.Close()
	}
	cancel()
	<-ran
}
