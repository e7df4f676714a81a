package probe

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Response is one answer as a prober records it.
type Response struct {
	StatusLine string // "HTTP/1.1 404 Not Found"
	Header     http.Header
	// Names are the header names as sent, in order.
	Names []string
	// Close says the server said it would close the connection
	// ("Connection: close", or HTTP/1.0 without keep-alive), which
	// net/http takes out of Header.
	Close bool
	Body  []byte
}

// Answer is everything a server sent back for one Request: its responses
// in order, and what followed them that was not a response (nil if
// nothing).
type Answer struct {
	Responses []Response
	Rest      []byte
}

// Dialer opens the connection a probe is sent on: plain TCP, or TLS.
type Dialer func(ctx context.Context, addr string) (net.Conn, error)

// Plain dials TCP.
func Plain(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// TLS dials TLS without checking the certificate, as a scanner does.
func TLS(ctx context.Context, addr string) (net.Conn, error) {
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}}
	return d.DialContext(ctx, "tcp", addr)
}

// Send writes r to a new connection from dial, closes its write side, and
// reads until the server closes the connection or ctx ends.
func Send(ctx context.Context, dial Dialer, addr string, r Request) (Answer, error) {
	c, err := dial(ctx, addr)
	if err != nil {
		return Answer{}, fmt.Errorf("probe %q: %w", r.Name, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	// A server may answer and close before it has read all of a long
	// request: a failed write is part of the answer, not an error.
	_, werr := io.WriteString(c, r.Raw)
	if werr == nil {
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}
	raw, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && len(raw) == 0 && !isReset(err) {
		return Answer{}, fmt.Errorf("probe %q: read: %w", r.Name, err)
	}
	return Parse(raw, r.Head), nil
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// Parse splits raw into responses; head says the request was HEAD.
func Parse(raw []byte, head bool) Answer {
	var a Answer
	rd := bytes.NewReader(raw)
	br := bufio.NewReader(rd)
	method := http.MethodGet
	if head {
		method = http.MethodHead
	}
	for {
		at := len(raw) - rd.Len() - br.Buffered()
		if at == len(raw) {
			return a
		}
		if !bytes.HasPrefix(raw[at:], []byte("HTTP/")) {
			a.Rest = raw[at:]
			return a
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			a.Rest = raw[at:]
			return a
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		a.Responses = append(a.Responses, Response{StatusLine: resp.Proto + " " + resp.Status, Header: resp.Header, Names: names(raw[at:]), Close: resp.Close, Body: body})
	}
}

// names lists the header names of the head that raw begins with.
func names(raw []byte) []string {
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	lines := bytes.Split(head, []byte("\r\n"))
	var out []string
	for _, l := range lines[1:] {
		if name, _, ok := bytes.Cut(l, []byte(":")); ok {
			out = append(out, string(name))
		}
	}
	return out
}
