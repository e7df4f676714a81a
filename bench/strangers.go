package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"ferry/cert"
	"ferry/decoy"
)

// Strangers is the CPU a QUIC listener spends on strangers: handshakes one
// after another, each with a fresh TLS session, a GET / when the handshake
// completes with h3, then a close.
type Strangers struct {
	Server     string  `json:"server"` // ferry origin, ferry origin (previous), http3 (quic-go's HTTP/3 server: the baseline)
	ALPN       string  `json:"alpn"`   // what the strangers offer
	Outcome    string  `json:"outcome"`
	Handshakes int     `json:"handshakes"`
	CPUms      float64 `json:"cpu_ms_per_handshake"` // the server's, user and system
	XHTTP3     float64 `json:"x_http3,omitempty"`    // CPUms over the baseline's
}

// h3Svc names the baseline's one service.
const h3Svc = "h3"

// H3Server runs the baseline of the strangers' measurement (`ferry-bench
// h3server CERT KEY`): quic-go's HTTP/3 server, with the certificate and key
// of those PEM files and ferry's built-in decoy page, on a loopback port. It
// prints "h3 HOST:PORT", then serves until its stdin closes.
func H3Server(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) != 2 {
		return fmt.Errorf("h3server %q: want CERT KEY", args)
	}
	crt, err := tls.LoadX509KeyPair(args[0], args[1])
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer pc.Close()
	srv := &http3.Server{Handler: decoy.New(decoy.Options{}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{crt}}}
	go srv.Serve(pc)
	fmt.Fprintf(stdout, "%s %s\n", h3Svc, pc.LocalAddr())
	io.Copy(io.Discard, stdin)
	return srv.Close()
}

// measureStrangers measures the baseline, this ferry's origin, and the
// previous one's when there is one, in that order.
func measureStrangers(ctx context.Context, o Options) ([]Strangers, error) {
	// One certificate for all: a handshake's cost is mostly its
	// signature, and an origin's own certificate has a key of a random
	// kind (RSA's signatures cost ten times ECDSA's).
	certFile, keyFile, err := writeCert()
	if err != nil {
		return nil, err
	}
	defer os.Remove(certFile)
	defer os.Remove(keyFile)
	base, addrs, err := start(o.Self, []string{"h3server", certFile, keyFile}, nil, 1)
	if err != nil {
		return nil, fmt.Errorf("HTTP/3 server: %w", err)
	}
	ref, err := strangers(ctx, base, addrs[h3Svc], "http3", "h3", o.Strangers)
	base.stop()
	if err != nil {
		return nil, err
	}
	out := []Strangers{ref}
	for _, f := range o.ferries() {
		origin, addr, err := startQUICOrigin(ctx, f.bin, certFile, keyFile)
		if err != nil {
			return nil, err
		}
		name := "ferry origin"
		if f.label != "this" {
			name += " (" + f.label + ")"
		}
		for _, alpn := range []string{"h3", "ferry/1"} {
			s, err := strangers(ctx, origin, addr, name, alpn, o.Strangers)
			if err != nil {
				origin.stop()
				return nil, err
			}
			out = append(out, s)
		}
		origin.stop()
	}
	for i := range out {
		if ref.CPUms > 0 {
			out[i].XHTTP3 = out[i].CPUms / ref.CPUms
		}
	}
	return out, nil
}

// writeCert writes a self-signed ECDSA P-256 certificate and its key to
// two temporary PEM files.
func writeCert() (certFile, keyFile string, err error) {
	crt, err := cert.SelfSigned()
	if err != nil {
		return "", "", err
	}
	key, err := x509.MarshalPKCS8PrivateKey(crt.PrivateKey)
	if err != nil {
		return "", "", err
	}
	var files []string
	for _, b := range []*pem.Block{{Type: "CERTIFICATE", Bytes: crt.Certificate[0]}, {Type: "PRIVATE KEY", Bytes: key}} {
		f, err := os.CreateTemp("", "ferry-bench-*.pem")
		if err != nil {
			return "", "", err
		}
		files = append(files, f.Name())
		if err := errors.Join(pem.Encode(f, b), f.Close()); err != nil {
			return "", "", err
		}
	}
	return files[0], files[1], nil
}

// startQUICOrigin starts an origin of bin with a quic:// listener alone,
// with the certificate and key of those PEM files.
func startQUICOrigin(ctx context.Context, bin, certFile, keyFile string) (*child, string, error) {
	secret := make([]byte, 33)
	rand.Read(secret)
	free, err := freeAddrs(2)
	if err != nil {
		return nil, "", err
	}
	addr, admin := free[0], free[1]
	c, _, err := start(bin, []string{"origin"}, []string{"FERRY_SECRET=" + base64.StdEncoding.EncodeToString(secret), "FERRY_LOG_LEVEL=warn",
		"FERRY_ORIGIN_LISTEN=quic://" + addr, "FERRY_ORIGIN_TARGETS=chat=127.0.0.1:1", "FERRY_ADMIN=" + admin,
		"FERRY_ORIGIN_TLS_CERT=" + certFile, "FERRY_ORIGIN_TLS_KEY=" + keyFile}, 0)
	if err != nil {
		return nil, "", err
	}
	if err := waitReady(ctx, admin); err != nil {
		c.stop()
		return nil, "", fmt.Errorf("quic origin: %w\n%s", err, c.log)
	}
	return c, addr, nil
}

// strangers makes n stranger's handshakes offering alpn to addr, served by
// c, and returns the CPU c spent on them.
func strangers(ctx context.Context, c *child, addr, name, alpn string, n int) (Strangers, error) {
	udp, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return Strangers{}, err
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return Strangers{}, err
	}
	tr := &quic.Transport{Conn: pc}
	defer pc.Close()
	defer tr.Close()
	// One first, unmeasured: the server is up, and what it does once
	// (its first handshake's allocations) is not counted.
	outcome, err := stranger(ctx, tr, udp, addr, alpn)
	if err != nil {
		return Strangers{}, fmt.Errorf("%s, ALPN %s: %w", name, alpn, err)
	}
	before := cpuTimes([]*child{c})[0]
	for range n {
		got, err := stranger(ctx, tr, udp, addr, alpn)
		if err != nil || got != outcome {
			return Strangers{}, fmt.Errorf("%s, ALPN %s: %s, then %s: %v", name, alpn, outcome, got, err)
		}
	}
	cpu := cpuTimes([]*child{c})[0] - before
	return Strangers{Server: name, ALPN: alpn, Outcome: outcome, Handshakes: n, CPUms: cpu * 1000 / float64(n)}, nil
}

// stranger makes one handshake, and a GET / when it completes with h3, and
// says how it went.
func stranger(ctx context.Context, tr *quic.Transport, udp *net.UDPAddr, addr, alpn string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := tr.Dial(ctx, udp, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}}, nil)
	if err != nil {
		if te, ok := errors.AsType[*quic.TransportError](err); ok {
			return fmt.Sprintf("refused, %#x", uint64(te.ErrorCode)), nil
		}
		return "", err
	}
	defer conn.CloseWithError(0, "")
	if alpn != http3.NextProtoH3 {
		return "handshake", nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/", nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http3.Transport{}).NewClientConn(conn).RoundTrip(req)
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return fmt.Sprintf("handshake, GET %d", resp.StatusCode), nil
}
