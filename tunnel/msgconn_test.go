package tunnel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// wsPair connects a WebSocket client to a server on loopback; peer runs on
// the server's side and the client is returned.
func wsPair(t *testing.T, peer func(c *websocket.Conn)) *websocket.Conn {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		peer(c)
	}))
	c, _, err := websocket.Dial(context.Background(), srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.CloseNow()
		<-done
		srv.Close()
	})
	return c
}

// TestMsgConn checks the byte stream over messages: reads cross message
// boundaries, a message larger than coder/websocket's default limit goes
// through, the hello's message must end with the hello, and a normal close
// reads as EOF.
func TestMsgConn(t *testing.T) {
	big := bytes.Repeat([]byte("y"), 100<<10)
	c := wsPair(t, func(c *websocket.Conn) {
		ctx := context.Background()
		c.Write(ctx, websocket.MessageBinary, []byte("hello"))
		c.Write(ctx, websocket.MessageBinary, []byte("ab"))
		c.Write(ctx, websocket.MessageBinary, []byte("cd"))
		c.Write(ctx, websocket.MessageBinary, big)
		c.Close(websocket.StatusNormalClosure, "")
	})
	ctx, cancel := context.WithCancel(context.Background())
	m := newMsgConn(ctx, c)
	hello := make([]byte, 5)
	if _, err := io.ReadFull(m, hello); err != nil || string(hello) != "hello" {
		t.Fatalf("hello %q, %v", hello, err)
	}
	if err := m.handshakeDone(); err != nil {
		t.Fatal(err)
	}
	cancel() // as the handshake's caller does: the session must not mind
	rest, err := io.ReadAll(m)
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]byte("abcd"), big...); !bytes.Equal(rest, want) {
		t.Fatalf("read %d bytes, want %d", len(rest), len(want))
	}
}

func TestMsgConnRefuses(t *testing.T) {
	t.Run("hello runs on", func(t *testing.T) {
		c := wsPair(t, func(c *websocket.Conn) {
			c.Write(context.Background(), websocket.MessageBinary, []byte("hello and more"))
			c.Reader(context.Background()) // until the client closes
		})
		m := newMsgConn(context.Background(), c)
		io.ReadFull(m, make([]byte, 5))
		if err := m.handshakeDone(); !errors.Is(err, ErrBadHello) {
			t.Fatalf("handshakeDone: %v, want ErrBadHello", err)
		}
	})
	t.Run("text", func(t *testing.T) {
		c := wsPair(t, func(c *websocket.Conn) {
			c.Write(context.Background(), websocket.MessageText, []byte("hello"))
			c.Reader(context.Background())
		})
		m := newMsgConn(context.Background(), c)
		if _, err := m.Read(make([]byte, 5)); err == nil || !strings.Contains(err.Error(), "not binary") {
			t.Fatalf("read a text message: %v", err)
		}
	})
}
