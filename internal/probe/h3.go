package probe

import (
	"crypto/tls"
	"net"
	"net/http"
	"testing"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"ferry/cert"
)

// H3Server starts quic-go's own HTTP/3 server with handler (and qc, nil for
// its defaults) on loopback, the reference that a QUIC tunnel listener must
// not be told from, and returns its address; it stops when the test ends.
func H3Server(t testing.TB, handler http.Handler, qc *quic.Config) string {
	t.Helper()
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http3.Server{Handler: handler, TLSConfig: &tls.Config{Certificates: []tls.Certificate{crt}}, QUICConfig: qc}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(pc)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
		pc.Close()
	})
	return pc.LocalAddr().String()
}
