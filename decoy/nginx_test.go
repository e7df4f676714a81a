package decoy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"ferry/cert"
	"ferry/internal/probe"
)

// The nginx comparison: one corpus of raw requests (internal/probe) sent to
// a real nginx and to the decoy, serving the same site, and the answers
// compared on what a prober looks at. nginx runs from $PATH with a
// configuration of the test's own (nginxConf); without nginx the test is
// skipped, except in CI (CI=true), which installs it.

// knownDiffs are the differences left, by probe name, each with why it
// stays. A difference not listed fails the test; the report lists all.
var knownDiffs = map[string]string{
	"HTTP/0.9":                     "nginx answers HTTP/0.9 with the bare file; net/http refuses the request line (400)",
	"header without colon":         "nginx ignores a header line without a colon; net/http refuses it (400)",
	"request line with two spaces": "nginx takes repeated spaces in the request line; net/http refuses them (400)",
	"Range, two parts":             "multipart/byteranges: net/http's random boundary and part header order, nginx's counter",
	"Expect: foo":                  "net/http answers an unknown Expect with 417 before the handler; nginx ignores it",
}

// siteFiles is the test site: an index, a subdirectory with its own, one
// without, dotfiles, and symlinks leading out.
func writeSite(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"index.html":     "<!doctype html><title>Hi</title><p>Hello.</p>\n",
		"style.css":      "body{}\n",
		"dir/index.html": "dir\n",
		"dir/page.txt":   "text\n",
		".env":           "SECRET=1\n",
		".git/config":    "[core]\n",
	}
	mod := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"outside": "/etc", "passwd": "/etc/passwd"} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// writePage writes the built-in page's files into a directory, dates
// included, for nginx to serve.
func writePage(t *testing.T, p pageSource) string {
	t.Helper()
	dir := t.TempDir()
	for name, f := range p {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, f.mod, f.mod); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const nginxConf = `daemon off;
master_process on;
worker_processes 1;
%[1]s
error_log %[2]s/error.log;
pid %[2]s/nginx.pid;
events { worker_connections 256; }
http {
	%[3]s
	default_type application/octet-stream;
	access_log off;
	server_tokens off;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	server {
		listen %[4]s;
		listen %[5]s ssl;
		ssl_certificate %[2]s/cert.pem;
		ssl_certificate_key %[2]s/key.pem;
		root %[6]s;
		index index.html;
		disable_symlinks on;
		location ~ /\.(?!well-known/) { deny all; }
	}
}
`

// startNginx runs nginx serving dir on loopback, and returns its plain
// and TLS addresses. Its listening sockets are the test's own, handed
// over the way nginx passes them to a new binary (the NGINX variable), so
// they take connections before nginx has started.
func startNginx(t *testing.T, dir string) (plain, secure string) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("nginx is not installed, and CI must run the comparison")
		}
		t.Skip("nginx is not installed: no comparison")
	}
	prefix := t.TempDir()
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, crt, filepath.Join(prefix, "cert.pem"), filepath.Join(prefix, "key.pem"))
	lns := []*net.TCPListener{listenTCP(t), listenTCP(t)}
	mime := ""
	if _, err := os.Stat("/etc/nginx/mime.types"); err == nil {
		mime = "include /etc/nginx/mime.types;"
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	conf := fmt.Sprintf(nginxConf, user, prefix, mime, lns[0].Addr(), lns[1].Addr(), dir)
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(prefix, "nginx.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// The sockets go to nginx as fds 3 and 4. Not through
	// exec.Cmd.ExtraFiles: it would make them blocking (os.File.Fd),
	// for nginx and for the test. (nginx 1.22 with inherited sockets
	// crashes with master_process off, hence a master and a worker.)
	fds := []uintptr{0, out.Fd(), out.Fd()}
	var names []string
	for _, ln := range lns {
		f, err := ln.File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rc, err := f.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		rc.Control(func(fd uintptr) { fds = append(fds, fd) })
		names = append(names, fmt.Sprint(len(fds)-1))
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	fds[0] = devnull.Fd()
	env := append(os.Environ(), "NGINX="+strings.Join(names, ";")+";")
	pid, err := syscall.ForkExec(bin, []string{bin, "-e", filepath.Join(prefix, "error.log"), "-p", prefix, "-c", confPath},
		&syscall.ProcAttr{Env: env, Files: fds})
	if err != nil {
		t.Fatal(err)
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// SIGTERM: the master stops its worker and waits for it.
		proc.Signal(syscall.SIGTERM)
		proc.Wait()
		if t.Failed() {
			output, _ := os.ReadFile(filepath.Join(prefix, "nginx.out"))
			log, _ := os.ReadFile(filepath.Join(prefix, "error.log"))
			t.Logf("nginx output: %s\nerror.log: %s", output, log)
		}
	})
	for _, ln := range lns {
		// nginx has its own copies; the test's go.
		ln.Close()
	}
	return lns[0].Addr().String(), lns[1].Addr().String()
}

func writePEM(t *testing.T, crt tls.Certificate, certFile, keyFile string) {
	t.Helper()
	key, err := x509.MarshalPKCS8PrivateKey(crt.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: crt.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func listenTCP(t *testing.T) *net.TCPListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln.(*net.TCPListener)
}

// startDecoy serves h as ferry does, on plain and TLS listeners.
func startDecoy(t *testing.T, h http.Handler) (plain, secure string) {
	t.Helper()
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, useTLS := range []bool{false, true} {
		var ln net.Listener = listenTCP(t)
		addrs = append(addrs, ln.Addr().String())
		if useTLS {
			ln = TLSListener(ln, &tls.Config{Certificates: []tls.Certificate{crt}})
		} else {
			ln = Listener(ln)
		}
		srv := NewServer(h, nil)
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.Serve(ln)
		}()
		t.Cleanup(func() {
			// Shutdown waits for the connections net/http lingers on
			// after an error answer (closeWriteAndWait); Close does not.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if srv.Shutdown(ctx) != nil {
				srv.Close()
			}
			<-done
		})
	}
	return addrs[0], addrs[1]
}

// compared is what a prober looks at in an answer, with what varies
// between two servers of the same kind (the date, the port) taken out.
func compared(a probe.Answer, addr string) []string {
	_, port, _ := net.SplitHostPort(addr)
	var out []string
	for _, r := range a.Responses {
		out = append(out, "status "+r.StatusLine)
		for _, h := range []string{"Server", "Content-Type", "Content-Length", "Last-Modified", "ETag", "Accept-Ranges", "Content-Range", "Allow", "Location"} {
			if v, ok := r.Header[http.CanonicalHeaderKey(h)]; ok {
				out = append(out, h+": "+strings.ReplaceAll(strings.Join(v, ","), ":"+port+"/", ":PORT/"))
			}
		}
		conn := r.Header.Get("Connection")
		if r.Close {
			conn = "close"
		}
		out = append(out, "Connection: "+conn)
		names := slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { return n == "Date" })
		out = append(out, "order: "+strings.Join(names, " "))
		out = append(out, fmt.Sprintf("body %q", r.Body))
	}
	if len(a.Rest) > 0 {
		out = append(out, fmt.Sprintf("then %q", a.Rest))
	}
	if len(out) == 0 {
		out = append(out, "no answer")
	}
	return out
}

// diff is the first line where want and got differ.
func diff(want, got []string) (string, bool) {
	for i := 0; i < max(len(want), len(got)); i++ {
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			return fmt.Sprintf("nginx %s | decoy %s", cut(w), cut(g)), true
		}
	}
	return "", false
}

func cut(s string) string {
	if len(s) > 90 {
		return s[:90] + "…"
	}
	return s
}

func TestNginxComparison(t *testing.T) {
	t.Run("directory", func(t *testing.T) {
		dir := writeSite(t)
		compare(t, dir, New(Options{Dir: dir}), probe.Corpus("localhost"))
	})
	t.Run("built-in page", func(t *testing.T) {
		page := newPage([]byte("an install"), time.Time{}, time.Now())
		compare(t, writePage(t, page), static{src: page, boundaries: new(atomic.Uint64)}, probe.Corpus("localhost"))
	})
}

func compare(t *testing.T, dir string, h http.Handler, corpus []probe.Request) {
	nPlain, nTLS := startNginx(t, dir)
	dPlain, dTLS := startDecoy(t, h)
	plainToTLS := probe.Request{Name: "plain HTTP to the TLS port", Raw: corpus[0].Raw}
	type target struct {
		name         string
		dial         probe.Dialer
		nginx, decoy string
		corpus       []probe.Request
	}
	targets := []target{
		{"http", probe.Plain, nPlain, dPlain, corpus},
		{"https", probe.TLS, nTLS, dTLS, corpus},
		{"https", probe.Plain, nTLS, dTLS, []probe.Request{plainToTLS}},
	}
	report := &strings.Builder{}
	tw := tabwriter.NewWriter(report, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "probe\tport\tknown\tdifference")
	for _, tg := range targets {
		for _, r := range tg.corpus {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			want, err := probe.Send(ctx, tg.dial, tg.nginx, r)
			if err != nil {
				cancel()
				t.Errorf("nginx: %v", err)
				continue
			}
			got, err := probe.Send(ctx, tg.dial, tg.decoy, r)
			cancel()
			if err != nil {
				t.Errorf("decoy: %v", err)
				continue
			}
			d, differs := diff(compared(want, tg.nginx), compared(got, tg.decoy))
			if !differs {
				continue
			}
			why, known := knownDiffs[r.Name]
			if !known {
				why, known = knownDiffs[tg.name+" "+r.Name]
			}
			if !known {
				t.Errorf("%s over %s: %s", r.Name, tg.name, d)
			}
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", r.Name, tg.name, known, d)
			_ = why
		}
	}
	tw.Flush()
	t.Logf("what still differs from nginx:\n%s", report)
}
