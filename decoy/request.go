package decoy

import (
	"maps"
	"net/http"
	"slices"
	"strings"
)

// refuse finds what nginx refuses while it reads the request and net/http
// lets through: ok is false with the status and detail to answer.
func refuse(r *http.Request) (code int, detail string, ok bool) {
	if r.Method == "PRI" {
		// "PRI * HTTP/2.0", the HTTP/2 preface, which net/http's
		// HTTP/1 server passes on: nginx without http2 on this port
		// reads a bad request line.
		return http.StatusBadRequest, "", false
	}
	for i := 0; i < len(r.Method); i++ {
		if c := r.Method[i]; (c < 'A' || c > 'Z') && c != '_' && c != '-' {
			return http.StatusBadRequest, "", false
		}
	}
	if n := tooLarge(r); n != 0 {
		if n == lineTooLarge {
			return http.StatusRequestURITooLong, "", false
		}
		return http.StatusBadRequest, detailHeaderTooLarge, false
	}
	switch r.Method {
	case http.MethodConnect:
		return http.StatusBadRequest, "", false
	case http.MethodTrace:
		return http.StatusMethodNotAllowed, "", false
	}
	if !validHost(r.Host) || r.Host == "" && r.ProtoAtLeast(1, 1) {
		return http.StatusBadRequest, "", false
	}
	return 0, "", true
}

// validHost is ngx_http_validate_host: no slash, no NUL, no empty label.
func validHost(h string) bool {
	if strings.HasPrefix(h, ".") || strings.Contains(h, "..") {
		return false
	}
	return !strings.ContainsAny(h, "/\x00\\")
}

// limits of nginx's header buffers, by default: client_header_buffer_size
// 1k, then large_client_header_buffers 4 8k. A line must fit in one
// buffer with its CRLF.
const (
	firstBuffer  = 1 << 10
	largeBuffer  = 8 << 10
	largeBuffers = 4
)

const (
	lineTooLarge   = 1 // the request line: 414
	headerTooLarge = 2 // a header line or all of them: 400
)

// tooLarge replays how nginx would have stored r's request line and
// headers in its buffers, and says which one overflowed (0 for none). The
// header lines are rebuilt as "Name: value"; their order and spacing on
// the wire are lost, which moves the limit by a few bytes at most.
func tooLarge(r *http.Request) int {
	used, pos, size := 0, 0, firstBuffer
	fit := func(n int) bool {
		n += 2 // CRLF
		if pos+n <= size {
			pos += n
			return true
		}
		if n > largeBuffer || used == largeBuffers {
			return false
		}
		used++
		pos, size = n, largeBuffer
		return true
	}
	if !fit(len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto)) {
		return lineTooLarge
	}
	if r.Host != "" && !fit(len("Host: ")+len(r.Host)) {
		return headerTooLarge
	}
	// Sorted, so that the same request always gets the same answer.
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		for _, v := range r.Header[k] {
			if !fit(len(k) + 2 + len(v)) {
				return headerTooLarge
			}
		}
	}
	if !fit(0) {
		return headerTooLarge
	}
	return 0
}
