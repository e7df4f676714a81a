package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"ferry/cert"
	"ferry/decoy"
	"ferry/internal/fake"
	"ferry/internal/scan"
)

// siteDir is a web site's directory, as an operator's FERRY_EDGE_DECOY.
func siteDir(t *testing.T) string {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<!doctype html><title>Hello</title><p>Hello.</p>\n"), 0o644)
	return dir
}

// standaloneListeners starts `ferry standalone` with a listener of each
// kind, the chat routes echoing, and returns their addresses by kind.
func standaloneListeners(t *testing.T, dir string, extra ...string) map[string]string {
	t.Helper()
	echo := fake.Start(t, fake.Echo)
	addrs := map[string]string{"tcp": freeAddr(t), "tls": freeAddr(t), "media": freeAddr(t), "proxy+tcp": freeAddr(t)}
	listen := "tcp://" + addrs["tcp"] + "/chat,tls://" + addrs["tls"] + "/chat,tcp://" + addrs["media"] + "/media,proxy+tcp://" + addrs["proxy+tcp"] + "/chat"
	env := append([]string{"FERRY_ADMIN=", "FERRY_EDGE_LISTEN=" + listen, "FERRY_EDGE_DECOY=" + dir,
		"FERRY_ORIGIN_TARGETS=chat=" + echo.Addr() + ",media=" + echo.Addr()}, extra...)
	start(t, build(t), env, "ferry standalone starting", "standalone")
	return addrs
}

// TestScannerViewBinary sends what scanners send to every kind of port of
// the real binary and compares the answers with the decoy package serving
// the same directory on a listener of its own, and with nginx's (in CI,
// which installs it): the same status, header names and body on every
// probe. (decoy/nginx_test.go compares the decoy with nginx in detail.)
func TestScannerViewBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := siteDir(t)
	addrs := standaloneListeners(t, dir)
	crt := selfSigned(t)
	refPlain := serveFiles(t, dir, nil)
	refTLS := serveFiles(t, dir, &tls.Config{Certificates: []tls.Certificate{crt}})
	var nginxPlain, nginxTLS string
	if _, err := exec.LookPath("nginx"); err == nil {
		nginxPlain, nginxTLS = startNginx(t, dir)
	} else if os.Getenv("CI") != "" {
		t.Fatal("nginx is not installed; CI installs it")
	}
	kinds := []struct {
		kind   string
		target scan.Target
	}{
		{"tcp", scan.Target{Addr: addrs["tcp"]}},
		{"proxy+tcp", scan.Target{Addr: addrs["proxy+tcp"], Proxy: true}},
		{"tls", scan.Target{Addr: addrs["tls"], TLS: true, SNI: "scan.example"}},
		{"media", scan.Target{Addr: addrs["media"], TLS: true, SNI: "scan.example"}},
	}
	for _, k := range kinds {
		for _, p := range scan.Probes(t, "scan.example") {
			t.Run(k.kind+"/"+p.Name, func(t *testing.T) {
				got := scan.Answers(scan.Exchange(t, k.target, p.Send, false), p.Method)
				ref := scan.Target{Addr: refPlain, TLS: k.target.TLS, SNI: k.target.SNI}
				nginx := scan.Target{Addr: nginxPlain, TLS: k.target.TLS, SNI: k.target.SNI}
				if k.target.TLS {
					ref.Addr, nginx.Addr = refTLS, nginxTLS
				}
				want := scan.Answers(scan.Exchange(t, ref, p.Send, p.CloseWrite), p.Method)
				if !slices.Equal(got, want) {
					t.Fatalf("ferry answered\n%+v\nthe decoy answered\n%+v", got, want)
				}
				if nginx.Addr == "" {
					return
				}
				ng := scan.Answers(scan.Exchange(t, nginx, p.Send, p.CloseWrite), p.Method)
				if !slices.Equal(got, ng) {
					t.Fatalf("ferry answered\n%+v\nnginx answered\n%+v", got, ng)
				}
			})
		}
	}
}

// TestOpeningsBinary checks that WhatsApp's chat openings reach the target
// byte for byte through the real binary's listeners, also split.
func TestOpeningsBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	addrs := standaloneListeners(t, siteDir(t))
	for _, kind := range []string{"tcp", "tls", "proxy+tcp"} {
		for _, o := range [][]byte{fake.OpeningNative, fake.OpeningWeb} {
			for _, split := range []int{0, 1} {
				c, err := net.Dial("tcp", addrs[kind])
				if err != nil {
					t.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if kind == "proxy+tcp" {
					io.WriteString(c, "PROXY TCP4 198.51.100.7 127.0.0.1 40000 8222\r\n")
				}
				if kind == "tls" {
					c = tls.Client(c, &tls.Config{InsecureSkipVerify: true})
				}
				if split > 0 {
					c.Write(o[:split])
				}
				c.Write(o[split:])
				got := make([]byte, len(o))
				if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, o) {
					t.Errorf("%s split %d: %x, %v; want %x", kind, split, got, err, o)
				}
				c.Close()
			}
		}
	}
}

// serveFiles serves dir as the decoy package does, over TLS when conf is
// set, and returns its address.
func serveFiles(t *testing.T, dir string, conf *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := decoy.NewServer(decoy.New(decoy.Options{Dir: dir}), nil)
	addr := ln.Addr().String()
	if conf != nil {
		ln = decoy.TLSListener(ln, conf)
	} else {
		ln = decoy.Listener(ln)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return addr
}

// startNginx runs Debian's nginx in the foreground serving dir on two
// loopback ports, plain and TLS, and stops it, by its own process, at the
// end of the test.
func startNginx(t *testing.T, dir string) (plain, tlsAddr string) {
	t.Helper()
	work := t.TempDir()
	crt, key := filepath.Join(work, "cert.pem"), filepath.Join(work, "key.pem")
	writeCert(t, selfSigned(t), crt, key)
	plain, tlsAddr = freeAddr(t), freeAddr(t)
	conf := `daemon off; master_process off; worker_processes 1;
pid ` + work + `/nginx.pid; error_log ` + work + `/error.log;
events { worker_connections 64; }
http {
  access_log off;
  include /etc/nginx/mime.types;
  client_body_temp_path ` + work + `; proxy_temp_path ` + work + `; fastcgi_temp_path ` + work + `; uwsgi_temp_path ` + work + `; scgi_temp_path ` + work + `;
  server_tokens off;
  server { listen ` + plain + `; root ` + dir + `; }
  server { listen ` + tlsAddr + ` ssl; ssl_certificate ` + crt + `; ssl_certificate_key ` + key + `; root ` + dir + `; }
}
`
	cf := filepath.Join(work, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nginx", "-p", work, "-c", cf, "-e", filepath.Join(work, "error.log"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for _, a := range []string{plain, tlsAddr} {
		waitListen(t, a, func() string { b, _ := os.ReadFile(filepath.Join(work, "error.log")); return out.String() + string(b) })
	}
	return plain, tlsAddr
}

// waitListen waits, up to 10 s, until addr accepts a connection.
func waitListen(t *testing.T, addr string, why func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen: %v\n%s", addr, err, why())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	c, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writeCert writes c and its key as PEM files.
func writeCert(t *testing.T, c tls.Certificate, certFile, keyFile string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}
