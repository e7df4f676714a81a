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
		tun := &Tunnels{Origins: []tunnel.Peer{{Name: "test", Dialer: sessionDialer{sess}}}, Log: slog.New(slog.DiscardHandler)}
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

// countingDialer makes a new pipeSession per dial.
type countingDialer struct{ sessions chan *pipeSession }

func (d countingDialer) Dial(context.Context) (tunnel.Session, error) {
	s := &pipeSession{discard: true, done: make(chan struct{})}
	d.sessions <- s
	return s, nil
}

// TestPoolLeastBusy checks that an origin gets Pool sessions and that new
// streams go to the one with the fewest.
func TestPoolLeastBusy(t *testing.T) {
	d := countingDialer{sessions: make(chan *pipeSession, 3)}
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
	var streams []net.Conn
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
