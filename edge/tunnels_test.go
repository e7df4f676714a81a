package edge

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferryproxy/ferry/pool"
	"github.com/ferryproxy/ferry/tunnel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pipeSession is a session whose streams are net.Pipes; the far ends come
// out of streams.
type pipeSession struct {
	discard    bool // read and drop what streams carry, rather than hand out far ends
	clientAddr bool
	streams    chan net.Conn
	done       chan struct{}
}

type pipeStream struct{ net.Conn }

func (pipeStream) CloseWrite() error { return nil }
func (pipeStream) PeerEnded() error  { return nil }

func (s *pipeSession) OpenStream(context.Context) (tunnel.Stream, error) {
	a, b := net.Pipe()
	if s.discard {
		go io.Copy(io.Discard, b)
	} else {
		s.streams <- b
	}
	return pipeStream{a}, nil
}
func (s *pipeSession) AcceptStream(ctx context.Context) (tunnel.Stream, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (s *pipeSession) Done() <-chan struct{}         { return s.done }
func (s *pipeSession) Close() error                  { return nil }
func (s *pipeSession) ClientAddress() bool           { return s.clientAddr }
func (s *pipeSession) Drain() error                  { return nil }
func (s *pipeSession) PeerDraining() <-chan struct{} { return nil }
func (s *pipeSession) RTT() time.Duration            { return 0 }
func (s *pipeSession) Probe(context.Context) error   { return nil }

type sessionDialer struct{ s tunnel.Session }

func (d sessionDialer) Dial(context.Context) (tunnel.Session, error) { return d.s, nil }

// TestClientAddressOnlyWhenAsked checks that a client's address goes into
// the stream header only for an origin that asked for it.
func TestClientAddressOnlyWhenAsked(t *testing.T) {
	client := netip.MustParseAddrPort("203.0.113.5:5555")
	for _, asked := range []bool{false, true} {
		sess := &pipeSession{clientAddr: asked, streams: make(chan net.Conn, 1), done: make(chan struct{})}
		tun := &Tunnels{Pool: pool.Pool{Peers: []pool.Peer{{Name: "test", Dialer: sessionDialer{sess}}}, Log: slog.New(slog.DiscardHandler)}}
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan struct{})
		go func() {
			tun.Run(ctx)
			close(ran)
		}()
		// A pipe's Write waits for its Read: read the header meanwhile.
		type result struct {
			h   tunnel.Header
			err error
		}
		got := make(chan result, 1)
		go func() {
			far := <-sess.streams
			h, err := tunnel.ReadHeader(far)
			far.Close()
			got <- result{h, err}
		}()
		st, err := tun.open(ctx, "chat", "", client, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The header goes out with the client's first bytes.
		go st.Write([]byte("hello"))
		r := <-got
		h := r.h
		if r.err != nil {
			t.Fatal(r.err)
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
