package edge

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"

	"go.uber.org/goleak"

	"ferry/internal/tunneltest"
	"ferry/pool"
	"ferry/tunnel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestClientAddressOnlyWhenAsked checks that a client's address goes into
// the stream header only for an origin that asked for it.
func TestClientAddressOnlyWhenAsked(t *testing.T) {
	client := netip.MustParseAddrPort("203.0.113.5:5555")
	for _, asked := range []bool{false, true} {
		sess, originSess := tunneltest.Pair(tunneltest.Options{ClientAddress: asked})
		tun := &Tunnels{Pool: pool.Pool{Peers: []pool.Peer{{Name: "test", Dialer: tunneltest.Sessions(sess)}}, Size: 1, Log: slog.New(slog.DiscardHandler)}}
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
