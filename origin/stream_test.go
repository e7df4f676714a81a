package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"ferry/config"
	"ferry/internal/fake"
	"ferry/internal/tunneltest"
	"ferry/tunnel"
	"ferry/upstream"
)

// The routes of these tests: chat dials one address, media a pattern's
// names, and down's address refuses every dial.
const testTargets = "chat=chat.test:5222,media=*.whatsapp.test:443,down=down.test:1"

// memTargets is an upstream.Dialer whose targets are in memory: each dial
// of a route's address hands the target's end of a stream pair to the
// test, and down.test refuses.
type memTargets struct {
	conns chan *tunneltest.Stream
	mu    sync.Mutex
	dials []string
}

func newMemTargets() *memTargets { return &memTargets{conns: make(chan *tunneltest.Stream, 16)} }

func (m *memTargets) dial(_ context.Context, _, addr string) (net.Conn, error) {
	m.mu.Lock()
	m.dials = append(m.dials, addr)
	m.mu.Unlock()
	if addr == "down.test:1" {
		return nil, fmt.Errorf("dial %s: %w", addr, syscall.ECONNREFUSED)
	}
	a, b := tunneltest.Pipe()
	m.conns <- b
	return a, nil
}

func (m *memTargets) dialled() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.dials
	m.dials = nil
	return d
}

// running is an origin served by Run on a tunneltest.Listener.
type running struct {
	srv    *Server
	ln     *tunneltest.Listener
	cancel context.CancelFunc // begins the drain
	ran    chan struct{}      // closed when Run has returned
}

// runOrigin runs an origin for testTargets whose dials go to dial, with
// grace for its drain, until the test ends.
func runOrigin(t *testing.T, dial func(ctx context.Context, network, addr string) (net.Conn, error), grace time.Duration) *running {
	t.Helper()
	targets, err := config.ParseTargets(testTargets)
	if err != nil {
		t.Fatal(err)
	}
	ln := tunneltest.NewListener(tunneltest.Options{})
	srv := &Server{
		Listeners: []tunnel.Listener{ln},
		// No probes: the tests count the dials.
		Upstream: &upstream.Dialer{Targets: targets, DialContext: dial, ProbeEvery: -1},
		Grace:    grace,
		Log:      slog.New(slog.DiscardHandler),
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{srv: srv, ln: ln, cancel: cancel, ran: make(chan struct{})}
	go func() {
		defer close(r.ran)
		srv.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.ran
	})
	return r
}

// connect is an edge's session to the origin.
func (r *running) connect(t *testing.T) *tunneltest.Session {
	t.Helper()
	sess, err := r.ln.Connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess
}

// open opens a stream for h on sess, sends first with the header and
// waits for the reply.
func open(t *testing.T, sess tunnel.Session, h tunnel.Header, first string) (*tunnel.EdgeStream, error) {
	t.Helper()
	st, err := tunnel.Open(t.Context(), sess, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte(first)); err != nil {
		t.Fatal(err)
	}
	return st, st.AwaitReply()
}

// TestRefusals checks the origin's answer to a stream it cannot serve: the
// reply that says why, then the stream's end, with only an unreachable
// route's address dialled, and the stream counted out.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		h      tunnel.Header
		raw    []byte // sent instead of h when set
		reply  tunnel.Reply
		dialed []string
	}{
		{name: "bad header", raw: []byte{99, 0, 4, 'c', 'h', 'a', 't'}, reply: tunnel.ReplyBadHeader},
		{name: "unknown route", h: tunnel.Header{Route: "nope"}, reply: tunnel.ReplyUnknownRoute},
		{name: "name not allowed", h: tunnel.Header{Route: "media", ServerName: "evil.example"}, reply: tunnel.ReplyNotAllowed},
		{name: "name on a chat route", h: tunnel.Header{Route: "chat", ServerName: "g.whatsapp.test"}, reply: tunnel.ReplyOK, dialed: []string{"chat.test:5222"}},
		{name: "unreachable", h: tunnel.Header{Route: "down"}, reply: tunnel.ReplyUnreachable, dialed: []string{"down.test:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				targets := newMemTargets()
				o := runOrigin(t, targets.dial, time.Second)
				sess := o.connect(t)
				st, err := sess.OpenStream(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				b := tc.raw
				if b == nil {
					b, _ = tc.h.AppendBinary(nil)
				}
				st.Write(append(b, "hello"...))
				if tc.reply == tunnel.ReplyOK {
					// Not a refusal: a chat route ignores a name.
					var r [1]byte
					if _, err := io.ReadFull(st, r[:]); err != nil || tunnel.Reply(r[0]) != tunnel.ReplyOK {
						t.Fatalf("reply %d, %v; want ReplyOK", r[0], err)
					}
					(<-targets.conns).Close()
				} else {
					// The reply, then the origin's FIN: nothing is lost to
					// the reset of its Close.
					got, err := io.ReadAll(st)
					if err != nil || len(got) != 1 || tunnel.Reply(got[0]) != tc.reply {
						t.Fatalf("read %v, %v; want reply %d and the end", got, err, tc.reply)
					}
				}
				st.Close()
				if d := targets.dialled(); fmt.Sprint(d) != fmt.Sprint(tc.dialed) {
					t.Errorf("dialled %v, want %v", d, tc.dialed)
				}
				synctest.Wait()
				if s := o.srv.Stats(); s.Streams != 0 || s.Sessions != 1 {
					t.Errorf("stats %+v after the stream, want 1 session and no stream", s)
				}
			})
		})
	}
}

// TestHeaderTimeout checks that a stream whose header does not come in
// HeaderTimeout is refused as a bad header.
func TestHeaderTimeout(t *testing.T) { synctest.Test(t, testHeaderTimeout) }

func testHeaderTimeout(t *testing.T) {
	targets := newMemTargets()
	o := runOrigin(t, targets.dial, time.Second)
	sess := o.connect(t)
	st, err := sess.OpenStream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st.Write([]byte{2}) // a version, and nothing more
	got, err := io.ReadAll(st)
	if err != nil || len(got) != 1 || tunnel.Reply(got[0]) != tunnel.ReplyBadHeader {
		t.Fatalf("read %v, %v; want ReplyBadHeader and the end", got, err)
	}
	if d := time.Since(start); d != HeaderTimeout {
		t.Errorf("refused after %v, want HeaderTimeout", d)
	}
	st.Close()
	if d := targets.dialled(); d != nil {
		t.Errorf("dialled %v", d)
	}
}

// TestRelayHalfClose checks a stream the origin takes: ReplyOK, then bytes
// both ways, each direction's FIN crossing to the other side while the
// other direction goes on; and the gauges while it lives and after.
func TestRelayHalfClose(t *testing.T) { synctest.Test(t, testRelayHalfClose) }

func testRelayHalfClose(t *testing.T) {
	targets := newMemTargets()
	o := runOrigin(t, targets.dial, time.Second)
	sess := o.connect(t)
	st, err := open(t, sess, tunnel.Header{Route: "chat"}, "hello")
	if err != nil {
		t.Fatalf("reply: %v", err)
	}
	target := <-targets.conns
	if d := targets.dialled(); len(d) != 1 || d[0] != "chat.test:5222" {
		t.Errorf("dialled %v", d)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(target, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("target read %q, %v", buf, err)
	}
	if s := o.srv.Stats(); s != (Stats{Sessions: 1, Streams: 1}) {
		t.Errorf("stats %+v with one stream", s)
	}

	// The target ends first; the client still sends.
	target.Write([]byte("bye"))
	target.CloseWrite()
	if got, err := io.ReadAll(st); err != nil || string(got) != "bye" {
		t.Fatalf("edge read %q, %v; want bye and EOF", got, err)
	}
	st.Write([]byte("more"))
	st.CloseWrite()
	if got, err := io.ReadAll(target); err != nil || string(got) != "more" {
		t.Fatalf("target read %q, %v; want more and EOF", got, err)
	}
	if err := st.Close(); err != nil {
		t.Error(err)
	}
	target.Close()
	synctest.Wait()
	if s := o.srv.Stats(); s != (Stats{Sessions: 1}) {
		t.Errorf("stats %+v after the stream", s)
	}
}

// TestResetCrosses checks, with a TCP target on loopback, that an edge's
// reset of its stream resets the target's connection, and a target's
// reset the stream, as the peer's abort: an abort never arrives as a
// clean end.
func TestResetCrosses(t *testing.T) {
	type target struct {
		c   net.Conn
		end chan error // what the target's read after "hello" returns
	}
	conns := make(chan target, 2)
	srv := fake.Start(t, func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, 5)); err != nil {
			return
		}
		tg := target{c: c, end: make(chan error, 1)}
		conns <- tg
		_, err := c.Read(make([]byte, 1))
		tg.end <- err
	})
	o := runOrigin(t, func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Addr())
	}, time.Second)
	sess := o.connect(t)

	t.Run("edge", func(t *testing.T) {
		st, err := open(t, sess, tunnel.Header{Route: "chat"}, "hello")
		if err != nil {
			t.Fatal(err)
		}
		tg := <-conns
		st.Close() // an abort: neither direction has ended
		if err := <-tg.end; !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the target read %v after the edge's reset, want ECONNRESET", err)
		}
	})
	t.Run("target", func(t *testing.T) {
		st, err := open(t, sess, tunnel.Header{Route: "chat"}, "hello")
		if err != nil {
			t.Fatal(err)
		}
		tg := <-conns
		tg.c.(*net.TCPConn).SetLinger(0)
		tg.c.Close()
		st.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = st.Read(make([]byte, 1))
		if !errors.Is(err, tunnel.ErrPeerAborted) {
			t.Errorf("the edge read %v after the target's reset, want ErrPeerAborted", err)
		}
		st.Close()
		<-tg.end
	})
}

// TestDrain checks the origin's drain: it tells its edges, answers new
// streams ReplyDraining, lets a live stream carry on until it ends, and
// then returns without waiting out the grace period.
func TestDrain(t *testing.T) { synctest.Test(t, testDrain) }

func testDrain(t *testing.T) {
	targets := newMemTargets()
	const grace = time.Hour
	o := runOrigin(t, targets.dial, grace)
	sess := o.connect(t)
	st, err := open(t, sess, tunnel.Header{Route: "chat"}, "hi")
	if err != nil {
		t.Fatal(err)
	}
	target := <-targets.conns
	io.ReadFull(target, make([]byte, 2))

	start := time.Now()
	o.cancel()
	<-sess.PeerDraining()
	if _, err := open(t, sess, tunnel.Header{Route: "chat"}, "late"); !errors.Is(err, tunnel.ReplyDraining) {
		t.Errorf("a stream opened during the drain: %v, want ReplyDraining", err)
	}
	// The live stream carries on, both ways.
	st.Write([]byte("more"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(target, buf); err != nil || string(buf) != "more" {
		t.Fatalf("target read %q, %v during the drain", buf, err)
	}
	target.Write([]byte("back"))
	if _, err := io.ReadFull(st, buf); err != nil || string(buf) != "back" {
		t.Fatalf("edge read %q, %v during the drain", buf, err)
	}
	synctest.Wait()
	select {
	case <-o.ran:
		t.Fatal("Run returned with a stream live")
	default:
	}
	if s := o.srv.Stats(); s.Streams != 1 {
		t.Errorf("stats %+v during the drain, want the live stream", s)
	}

	st.CloseWrite()
	io.ReadAll(target)
	target.CloseWrite()
	io.ReadAll(st)
	st.Close()
	target.Close()
	<-o.ran
	if d := time.Since(start); d >= grace {
		t.Errorf("Run returned after %v, the grace period", d)
	}
	if s := o.srv.Stats(); s != (Stats{}) {
		t.Errorf("stats %+v after Run", s)
	}
	select {
	case <-sess.Done():
	default:
		t.Error("the session outlived Run")
	}
}

// TestStatsSessions checks the session gauges: sessions live, and those
// whose edge said it drains, until they end; and the sessions by source.
func TestStatsSessions(t *testing.T) { synctest.Test(t, testStatsSessions) }

func testStatsSessions(t *testing.T) {
	o := runOrigin(t, newMemTargets().dial, time.Second)
	a, b := o.connect(t), o.connect(t)
	synctest.Wait()
	if s := o.srv.Stats(); s != (Stats{Sessions: 2}) {
		t.Errorf("stats %+v with two sessions", s)
	}
	if src := o.srv.Sources(); len(src) != 1 || src[0].Sessions != 2 {
		t.Errorf("sources %+v with two sessions on the one listener", src)
	}
	a.Drain()
	synctest.Wait()
	if s := o.srv.Stats(); s != (Stats{Sessions: 2, EdgeDraining: 1}) {
		t.Errorf("stats %+v with an edge draining", s)
	}
	a.Close()
	synctest.Wait()
	if s := o.srv.Stats(); s != (Stats{Sessions: 1}) {
		t.Errorf("stats %+v after the draining session's end", s)
	}
	b.Close()
	synctest.Wait()
	if s := o.srv.Stats(); s != (Stats{}) {
		t.Errorf("stats %+v after both ended", s)
	}
	if src := o.srv.Sources(); src[0].Sessions != 0 {
		t.Errorf("sources %+v after both ended", src)
	}
}
