package decoy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// get sends raw to a decoy of its own serving h, as a prober would, and
// returns the first answer.
func get(t *testing.T, h http.Handler, raw string) *http.Response {
	t.Helper()
	addr, _ := startDecoy(t, h)
	return send(t, addr, raw)
}

func send(t *testing.T, addr, raw string) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(newReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestDirectory checks what the static module refuses or redirects, with
// nginx's pages, without nginx at hand (nginx_test.go compares them).
func TestDirectory(t *testing.T) {
	dir := writeSite(t)
	addr, _ := startDecoy(t, New(Options{Dir: dir}))
	for _, c := range []struct {
		req    string
		status int
		body   string // a part of it
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 200, "Hello."},
		{"GET /.env HTTP/1.1\r\nHost: a\r\n\r\n", 403, "<title>403 Forbidden</title>"},
		{"GET /.git/config HTTP/1.1\r\nHost: a\r\n\r\n", 403, "<hr><center>nginx</center>"},
		{"GET /.well-known/missing HTTP/1.1\r\nHost: a\r\n\r\n", 404, "404 Not Found"},
		{"GET /empty/ HTTP/1.1\r\nHost: a\r\n\r\n", 403, "403 Forbidden"},
		{"GET /outside/passwd HTTP/1.1\r\nHost: a\r\n\r\n", 403, "403 Forbidden"},
		{"GET /passwd HTTP/1.1\r\nHost: a\r\n\r\n", 403, "403 Forbidden"},
		{"GET /../../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n", 400, "400 Bad Request"},
		{"GET /%2e%2e/etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n", 400, "400 Bad Request"},
		{"GET /dir/../index.html HTTP/1.1\r\nHost: a\r\n\r\n", 200, "Hello."},
		{"DELETE / HTTP/1.1\r\nHost: a\r\n\r\n", 405, "405 Not Allowed"},
		{"POST /index.html HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 405, "405 Not Allowed"},
		{"POST /missing HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 404, "404 Not Found"},
		{"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 400, "400 Bad Request"},
		{"GET /" + strings.Repeat("a", 9000) + " HTTP/1.1\r\nHost: a\r\n\r\n", 414, "414 Request-URI Too Large"},
		{"GET /" + strings.Repeat("a", 70000) + " HTTP/1.1\r\nHost: a\r\n\r\n", 414, "414 Request-URI Too Large"},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("b", 9000) + "\r\n\r\n", 400, "Request Header Or Cookie Too Large"},
		{"GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: "+strings.Repeat("b", 1000)+"\r\n", 60) + "\r\n", 400, "Request Header Or Cookie Too Large"},
		{"GET / HTTP/1.1\r\n\r\n", 400, "400 Bad Request"},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "501 Not Implemented"},
		{"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "505 HTTP Version Not Supported"},
		{"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 200, "Hello."},
	} {
		resp := send(t, addr, c.req)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != c.status || !strings.Contains(string(body), c.body) || resp.Header.Get("Server") != "nginx" {
			t.Errorf("%.40q: %s, Server %q, %q", c.req, resp.Status, resp.Header.Get("Server"), body)
		}
		if c.status >= 400 && resp.Header.Get("Content-Type") != "text/html" {
			t.Errorf("%.40q: Content-Type %q", c.req, resp.Header.Get("Content-Type"))
		}
	}

	resp := send(t, addr, "GET /dir?x=1 HTTP/1.1\r\nHost: a.example\r\n\r\n")
	_, port, _ := net.SplitHostPort(addr)
	if want := "http://a.example:" + port + "/dir/?x=1"; resp.StatusCode != 301 || resp.Header.Get("Location") != want {
		t.Errorf("directory without a slash: %s to %q, want 301 to %q", resp.Status, resp.Header.Get("Location"), want)
	}
	resp = send(t, addr, "GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n")
	if !regexp.MustCompile(`^"[0-9a-f]+-[0-9a-f]+"$`).MatchString(resp.Header.Get("Etag")) || resp.Header.Get("Last-Modified") != "Tue, 06 May 2025 07:08:09 GMT" ||
		resp.Header.Get("Accept-Ranges") != "bytes" || resp.Header.Get("Content-Type") != "text/html" {
		t.Errorf("file headers: %v", resp.Header)
	}
	resp = send(t, addr, "GET /index.html HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Errorf("If-Modified-Since another date: %s, want 200 (nginx's if_modified_since exact)", resp.Status)
	}
	resp = send(t, addr, "GET /index.html HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: Tue, 06 May 2025 07:08:09 GMT\r\n\r\n")
	if resp.StatusCode != 304 || resp.Header.Get("Last-Modified") == "" {
		t.Errorf("If-Modified-Since the file's date: %s, %v", resp.Status, resp.Header)
	}
}

// TestProxyDeadTarget: a decoy URL that does not answer gets nginx's 502
// page, not Go's empty one.
func TestProxyDeadTarget(t *testing.T) {
	ln := listenTCP(t)
	dead := ln.Addr().String()
	ln.Close()
	resp := get(t, New(Options{Target: &url.URL{Scheme: "http", Host: dead}}), "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 502 || string(body) != string(errorPage(502, "")) || resp.Header.Get("Server") != "nginx" {
		t.Errorf("%s %v %q", resp.Status, resp.Header, body)
	}
}

// TestProxyPassesAnswers: the proxied site's answers go through, with its
// own Server header; of a request, an edge's token cookie does not, and the
// visitor's other cookies do.
func TestProxyPassesAnswers(t *testing.T) {
	cookies := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cookies <- r.Header.Get("Cookie")
		w.Header().Set("Server", "Apache")
		io.WriteString(w, "upstream")
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	resp := get(t, New(Options{Target: u}), "GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1; "+TokenCookie+"=token\r\nCookie: b=2\r\n\r\n")
	if got := <-cookies; got != "a=1; b=2" {
		t.Errorf("the site got cookies %q, want a=1; b=2", got)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "upstream" || resp.Header.Get("Server") != "Apache" {
		t.Errorf("%s %v %q", resp.Status, resp.Header, body)
	}
}
