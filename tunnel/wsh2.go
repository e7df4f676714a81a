package tunnel

import "net/http"

// A wss listener speaks HTTP/2 to whoever asks for it by ALPN, as ordinary
// HTTPS sites do (an h2-only client that got a TLS alert instead would
// know it had not found one), with net/http's own HTTP/2 server: listenWS
// offers h2 in its tls.Config (the listener is wrapped in tls.NewListener
// there, so http.Server.Serve, unlike ServeTLS, adds nothing to NextProtos)
// and the http.Server's Protocols turn the server on. A ws listener is
// plain HTTP/1.1, as nginx's port 80 is: no h2c.
//
// What HTTP/2 serves is the decoy only. Tunnels come over HTTP/1.1: an
// h2 request carries no Upgrade (RFC 9113 §8.2.2), so IsUpgrade is false
// for it, and RFC 8441's extended CONNECT is off in net/http (GODEBUG
// http2xconnect), so no WebSocket over h2 is offered; an h2 CONNECT gets the
// decoy.
//
// The connection caps (wslimit.go) hold for h2 connections as they are:
// net/http reports StateNew and StateClosed for them, its HTTP/2 server
// StateActive while a stream is open and StateIdle when none is, so an
// idle h2 connection counts as an idle keep-alive of its address and is
// closed for another at a cap. What HTTP/2 adds, many requests on one
// connection, is bounded by wsHTTP2.
func wsProtocols() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	return &p
}

// wsHTTP2 bounds what one h2 connection of a stranger may make the listener
// hold, near nginx's defaults: 128 concurrent streams
// (http2_max_concurrent_streams), a 64 KiB window per stream for request
// bodies nobody reads (http2_body_preread_size; net/http's is 1 MiB) and
// 128 KiB per connection (net/http's: 1 MiB), frames of 16 KiB at most (the
// protocol's minimum; net/http reads up to 1 MiB into a buffer that stays
// with the connection). With DefaultMaxConns connections, that is at most
// 128 MiB of request bodies and 16 MiB of frame buffers. Header blocks are
// bounded by the http.Server's MaxHeaderBytes, as HTTP/1.1's are; the
// HPACK table keeps net/http's 4 KiB.
func wsHTTP2() *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxConcurrentStreams:          128,
		MaxReceiveBufferPerStream:     64 << 10,
		MaxReceiveBufferPerConnection: 128 << 10,
		MaxReadFrameSize:              16 << 10,
	}
}
