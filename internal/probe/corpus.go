// Package probe holds what a prober sends a suspected proxy over plain
// HTTP, and how to send it: one corpus of raw requests, shared by the
// decoy's comparison with a real nginx and the end-to-end prober table, so
// that both ask the same questions.
package probe

import "strings"

// Request is one probe: raw bytes written to a fresh connection as they
// are, whose write side is then closed, so that a server waiting for more
// answers or hangs up at once instead of at its timeout.
type Request struct {
	Name string
	Raw  string
	// HEAD answers have no body: the reader must know.
	Head bool
}

// Corpus is the probes, in the order a scanner might send them. Host is
// the name each request that has one carries.
func Corpus(host string) []Request {
	get := func(target string, extra ...string) string {
		return "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + strings.Join(extra, "") + "\r\n"
	}
	method := func(m, target string) string {
		return m + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 0\r\n\r\n"
	}
	long := strings.Repeat("a", 9<<10)
	return []Request{
		{Name: "GET /", Raw: get("/")},
		{Name: "HEAD /", Raw: "HEAD / HTTP/1.1\r\nHost: " + host + "\r\n\r\n", Head: true},
		{Name: "HEAD /missing", Raw: "HEAD /missing HTTP/1.1\r\nHost: " + host + "\r\n\r\n", Head: true},
		{Name: "GET /index.html", Raw: get("/index.html")},
		{Name: "GET /missing", Raw: get("/missing")},
		{Name: "GET /.env", Raw: get("/.env")},
		{Name: "GET /.git/config", Raw: get("/.git/config")},
		{Name: "GET /dir", Raw: get("/dir")},
		{Name: "GET /dir/", Raw: get("/dir/")},
		{Name: "GET /empty/", Raw: get("/empty/")},
		{Name: "GET /dir/page.txt", Raw: get("/dir/page.txt")},
		{Name: "GET /style.css", Raw: get("/style.css")},
		{Name: "GET /favicon.ico", Raw: get("/favicon.ico")},
		{Name: "GET /?q=1", Raw: get("/?q=1")},
		{Name: "GET /%69ndex.html", Raw: get("/%69ndex.html")},
		{Name: "GET /dir%2Fpage.txt", Raw: get("/dir%2Fpage.txt")},
		{Name: "GET /INDEX.HTML", Raw: get("/INDEX.HTML")},
		{Name: "POST /", Raw: method("POST", "/")},
		{Name: "POST /missing", Raw: method("POST", "/missing")},
		{Name: "PUT /", Raw: method("PUT", "/")},
		{Name: "DELETE /", Raw: method("DELETE", "/")},
		{Name: "OPTIONS /", Raw: method("OPTIONS", "/")},
		{Name: "TRACE /", Raw: method("TRACE", "/")},
		{Name: "OPTIONS *", Raw: method("OPTIONS", "*")},
		{Name: "PATCH /", Raw: method("PATCH", "/")},
		{Name: "CONNECT host:443", Raw: "CONNECT " + host + ":443 HTTP/1.1\r\nHost: " + host + ":443\r\n\r\n"},
		{Name: "FOO /", Raw: method("FOO", "/")},
		{Name: "lower-case get", Raw: "get / HTTP/1.1\r\nHost: " + host + "\r\n\r\n"},
		{Name: "HTTP/1.0 without Host", Raw: "GET / HTTP/1.0\r\n\r\n"},
		{Name: "HTTP/1.1 without Host", Raw: "GET / HTTP/1.1\r\n\r\n"},
		{Name: "HTTP/1.0 keep-alive", Raw: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
		{Name: "HTTP/0.9", Raw: "GET /\r\n"},
		{Name: "HTTP/2.0 request line", Raw: "GET / HTTP/2.0\r\nHost: " + host + "\r\n\r\n"},
		{Name: "HTTP/1.2", Raw: "GET / HTTP/1.2\r\nHost: " + host + "\r\n\r\n"},
		{Name: "absolute-form URI", Raw: "GET http://" + host + "/ HTTP/1.1\r\nHost: " + host + "\r\n\r\n"},
		{Name: "absolute-form URI, other host", Raw: "GET http://example.com/missing HTTP/1.1\r\nHost: " + host + "\r\n\r\n"},
		{Name: "asterisk-form GET", Raw: get("*")},
		{Name: "/../../etc/passwd", Raw: get("/../../etc/passwd")},
		{Name: "/%2e%2e/%2e%2e/etc/passwd", Raw: get("/%2e%2e/%2e%2e/etc/passwd")},
		{Name: "/..%2f..%2fetc/passwd", Raw: get("/..%2f..%2fetc/passwd")},
		{Name: "/dir/../index.html", Raw: get("/dir/../index.html")},
		{Name: "/%2e%2e%2f%2e%2e%2fetc%2fpasswd", Raw: get("/%2e%2e%2f%2e%2e%2fetc%2fpasswd")},
		{Name: "/%00", Raw: get("/%00")},
		{Name: "/%zz", Raw: get("/%zz")},
		{Name: "/index.html%00.txt", Raw: get("/index.html%00.txt")},
		{Name: "double slash //index.html", Raw: get("//index.html")},
		{Name: "symlink out of the dir", Raw: get("/outside")},
		{Name: "symlink to a file out of the dir", Raw: get("/passwd")},
		{Name: "9 KB URI", Raw: get("/" + long)},
		{Name: "70 KB URI", Raw: get("/" + strings.Repeat("a", 70<<10))},
		{Name: "9 KB header line", Raw: get("/", "X-Long: "+long+"\r\n")},
		{Name: "40 KB of headers", Raw: get("/", strings.Repeat("X-Pad: "+strings.Repeat("b", 1000)+"\r\n", 40))},
		{Name: "100 small headers", Raw: get("/", strings.Repeat("X-A: b\r\n", 100))},
		{Name: "header without colon", Raw: get("/", "Broken\r\n")},
		{Name: "header with space before colon", Raw: get("/", "X-Bad : 1\r\n")},
		{Name: "two Host headers", Raw: get("/", "Host: other\r\n")},
		{Name: "bad Host", Raw: "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"},
		{Name: "empty Host", Raw: "GET / HTTP/1.1\r\nHost: \r\n\r\n"},
		{Name: "Host with a port", Raw: "GET /dir HTTP/1.1\r\nHost: " + host + ":8080\r\n\r\n"},
		{Name: "IPv6 Host", Raw: "GET /dir HTTP/1.1\r\nHost: [::1]\r\n\r\n"},
		{Name: "long method", Raw: method(strings.Repeat("A", 40), "/")},
		{Name: "malformed request line", Raw: "GET/HTTP/1.1\r\n\r\n"},
		{Name: "request line with two spaces", Raw: "GET  / HTTP/1.1\r\nHost: " + host + "\r\n\r\n"},
		{Name: "bare LF", Raw: "GET / HTTP/1.1\nHost: " + host + "\n\n"},
		{Name: "bare CRLF", Raw: "\r\n"},
		{Name: "binary junk", Raw: "\x16\x03\x01\x00\xff\x01\x00\x00\xfb\x03\x03\x00\x01\x02\x03\r\n\r\n"},
		{Name: "NUL bytes", Raw: "\x00\x00\x00\x00\r\n\r\n"},
		{Name: "HTTP/2 preface", Raw: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
		{Name: "Range bytes=0-9", Raw: get("/index.html", "Range: bytes=0-9\r\n")},
		{Name: "Range bytes=-5", Raw: get("/index.html", "Range: bytes=-5\r\n")},
		{Name: "Range beyond the end", Raw: get("/index.html", "Range: bytes=100000-\r\n")},
		{Name: "Range, two parts", Raw: get("/index.html", "Range: bytes=0-1,4-5\r\n")},
		{Name: "Range, two parts with spaces", Raw: get("/index.html", "Range: bytes=0-1, 4-5\r\n")},
		{Name: "Range, parts over the size", Raw: get("/index.html", "Range: bytes=0-30,10-40\r\n")},
		{Name: "Range, one part past the end", Raw: get("/index.html", "Range: bytes=1-2,100000-\r\n")},
		{Name: "Range, suffix and open", Raw: get("/index.html", "Range: bytes=-3,5-\r\n")},
		{Name: "Range malformed", Raw: get("/index.html", "Range: bytes=x-y\r\n")},
		{Name: "If-None-Match *", Raw: get("/index.html", "If-None-Match: *\r\n")},
		{Name: "If-None-Match other", Raw: get("/index.html", "If-None-Match: \"0-0\"\r\n")},
		{Name: "If-Modified-Since future", Raw: get("/index.html", "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n")},
		{Name: "If-Modified-Since past", Raw: get("/index.html", "If-Modified-Since: Mon, 01 Jan 1990 00:00:00 GMT\r\n")},
		{Name: "Expect: 100-continue", Raw: "POST / HTTP/1.1\r\nHost: " + host + "\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n"},
		{Name: "Expect: foo", Raw: get("/", "Expect: foo\r\n")},
		{Name: "Transfer-Encoding: gzip", Raw: "POST / HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: gzip\r\n\r\n"},
		{Name: "Transfer-Encoding: chunked GET", Raw: "GET / HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{Name: "Content-Length twice", Raw: "POST / HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"},
		{Name: "Content-Length invalid", Raw: "POST / HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: x\r\n\r\n"},
		{Name: "WebSocket upgrade", Raw: get("/", "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")},
		{Name: "h2c upgrade", Raw: get("/", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n")},
		{Name: "Connection: close", Raw: get("/", "Connection: close\r\n")},
		{Name: "keep-alive, two requests", Raw: get("/") + get("/missing")},
	}
}
