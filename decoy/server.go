package decoy

import (
	"bufio"
	"io"
	"log"
	"net"
	"net/http"
	"time"
)

// nginx's timeouts: client_header_timeout for a request's line and
// headers (the first request's included), keepalive_timeout between
// requests. Each ends the connection without an answer, as nginx does.
const (
	HeaderTimeout = 60 * time.Second
	IdleTimeout   = 75 * time.Second
)

// maxHeaderBytes lets through to the handler everything up to a little
// more than nginx's own limits (a 1 KiB buffer, then four of 8 KiB), so
// that the handler finds which of them a request broke (static.go:
// tooLarge). Beyond it net/http refuses the request itself, and conn.go
// makes that answer nginx's. It also bounds what a stranger makes the
// process hold while it sends its headers.
const maxHeaderBytes = 40 << 10

// NewServer is the HTTP server every decoy is served with: on the
// origin's and the edge's tunnel listeners, and on the edge's client ports.
// It has nginx's timeouts, adds nginx's Server and Connection headers to
// every answer h gives but a protocol switch, and keeps net/http's server
// errors out of the log unless errorLog is given. Serve it on a Listener,
// which shapes the rest. The caller may set ConnContext and ConnState.
func NewServer(h http.Handler, errorLog *log.Logger) *http.Server {
	if errorLog == nil {
		errorLog = discardLogger()
	}
	return &http.Server{
		Handler:           Shape(h),
		ReadHeaderTimeout: HeaderTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          errorLog,
		// net/http would answer "OPTIONS *" itself, 200 with no body;
		// nginx answers 400.
		DisableGeneralOptionsHandler: true,
	}
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// Shape adds nginx's headers to h's answers, as NewServer does: for a
// decoy served by another server than net/http's (HTTP/3).
func Shape(h http.Handler) http.Handler { return shape{h} }

type shape struct{ h http.Handler }

func (s shape) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.h.ServeHTTP(&shapeWriter{ResponseWriter: w, r: r}, r)
}

type shapeWriter struct {
	http.ResponseWriter
	r     *http.Request
	wrote bool
}

func (w *shapeWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.wrote = true
		if code != http.StatusSwitchingProtocols {
			nginxHeaders(w.Header(), w.r)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *shapeWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach net/http's own writer.
func (w *shapeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack is for WebSocket libraries that look for an http.Hijacker.
func (w *shapeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *shapeWriter) Flush() {
	http.NewResponseController(w.ResponseWriter).Flush()
}

// nginxHeaders adds what nginx sends and net/http does not: its Server
// name (without a version, as with server_tokens off), and the Connection
// header it always sends. net/http replaces a keep-alive with its own
// close when it ends the connection.
func nginxHeaders(h http.Header, r *http.Request) {
	if _, ok := h["Server"]; !ok {
		h.Set("Server", "nginx")
	}
	if _, ok := h["Connection"]; ok || r.ProtoMajor != 1 {
		// HTTP/2 and HTTP/3 have no Connection header.
		return
	}
	switch {
	case !r.Close && r.ProtoAtLeast(1, 1):
		h.Set("Connection", "keep-alive")
	case r.Close && !r.ProtoAtLeast(1, 1):
		// net/http says nothing to an HTTP/1.0 client it leaves.
		h.Set("Connection", "close")
	}
}
