package decoy

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// FuzzConnRead: what Conn passes on is what came, less the empty lines
// before the first request, however the bytes are split.
func FuzzConnRead(f *testing.F) {
	f.Add([]byte("\r\n\r\nGET / HTTP/1.1\r\n\r\n"), uint8(3))
	f.Add([]byte("\n\n\n"), uint8(1))
	f.Add(bytes.Repeat([]byte("a"), 9000), uint8(200))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		a, b := net.Pipe()
		defer a.Close()
		go func() {
			n := max(int(chunk), 1)
			for p := in; len(p) > 0; p = p[min(n, len(p)):] {
				b.Write(p[:min(n, len(p))])
			}
			b.Close()
		}()
		got, err := io.ReadAll(Conn(a))
		if err != nil {
			t.Fatal(err)
		}
		if want := bytes.TrimLeft(in, "\r\n"); !bytes.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}

func TestCannedAnswers(t *testing.T) {
	for canned, want := range map[string]string{
		cannedTLS: "<title>400 The plain HTTP request was sent to HTTPS port</title>",
		"HTTP/1.1 400 Bad Request" + cannedHeaders + "400 Bad Request: missing required Host header":           "<title>400 Bad Request</title>",
		"HTTP/1.1 431 Request Header Fields Too Large" + cannedHeaders + "431 Request Header Fields Too Large": "<title>400 Request Header Or Cookie Too Large</title>",
		"HTTP/1.1 501 Not Implemented" + cannedHeaders + "Unsupported transfer encoding":                       "<title>501 Not Implemented</title>",
	} {
		c := newConn(nil)
		out := c.replaceCanned([]byte(canned))
		if !bytes.Contains(out, []byte(want)) || !bytes.Contains(out, []byte("\r\nServer: nginx\r\n")) {
			t.Errorf("%.30q became %q", canned, out)
		}
	}
	c := newConn(nil)
	c.lineLong.Store(true)
	if out := c.replaceCanned([]byte("HTTP/1.1 431 Request Header Fields Too Large" + cannedHeaders + "431")); !bytes.HasPrefix(out, []byte("HTTP/1.1 414 Request-URI Too Large\r\n")) {
		t.Errorf("a long request line: %q", out)
	}
	// A handler's own answer, with a Date, is not net/http's fixed one.
	if out := c.replaceCanned([]byte("HTTP/1.1 400 Bad Request\r\nDate: x" + cannedHeaders)); out != nil {
		t.Errorf("a handler's answer replaced: %q", out)
	}
}
