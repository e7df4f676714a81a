package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"ferry/check"
	"ferry/dnsupdate"
	"ferry/install"
	"ferry/internal/fake"
	"ferry/internal/named"
)

// The outer run of TestDeploy hands its inner run the key and container.
const (
	deployKeyVar  = "DEPLOY_TEST_KEY"
	deployRootVar = "DEPLOY_TEST_ROOT"
)

// TestDeploy runs `ferry deploy` end to end against a real OpenSSH server
// and a real systemd (see bootSystemd), in a network namespace of its own:
// a wrong host key refused, a host without systemd refused with nothing
// copied, a first install, an upgrade while a client is connected (the
// client finishes), then -dns and -replace; the secret is never in the
// output nor in a command line run on the host.
func TestDeploy(t *testing.T) {
	if os.Getenv(netnsInner) == "" {
		for _, tool := range []string{"systemd-nspawn", "/usr/sbin/sshd"} {
			if _, err := exec.LookPath(tool); err != nil {
				if os.Getenv("CI") != "" {
					t.Fatalf("needs %s (apt-get install systemd-container openssh-server)", tool)
				}
				t.Skipf("needs %s (apt-get install systemd-container openssh-server)", tool)
			}
		}
	}
	inNamespace(t, "TestDeploy", deployInNamespace, func(ns string) {
		key := filepath.Join(t.TempDir(), "id_ed25519")
		pub := writeKey(t, key)
		t.Setenv(deployKeyVar, key)
		t.Setenv(deployRootVar, bootSystemd(t, ns, pub))
	})
}

// writeKey writes a new private key to path, and its authorized_keys
// line, which it returns, to path.pub.
func writeKey(t *testing.T, path string) []byte {
	t.Helper()
	pk, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(sk, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	spk, _ := ssh.NewPublicKey(pk)
	pub := ssh.MarshalAuthorizedKey(spk)
	if err := os.WriteFile(path+".pub", pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return pub
}

// waThenEcho answers a client hello as WhatsApp does, then echoes.
func waThenEcho(c net.Conn) {
	if check.ReadHello(c) != nil {
		return
	}
	c.Write(check.ServerHello())
	io.Copy(c, c)
}

// fakeDNS records what it was asked to point.
// recordedDNS passes each Point on to its DNS (nil: none) and notes it,
// and when it returned.
type recordedDNS struct {
	dns   install.DNS
	mu    sync.Mutex
	calls []string
	done  time.Time
}

func (f *recordedDNS) Point(ctx context.Context, name string, addrs []netip.Addr, ttl time.Duration) error {
	var err error
	if f.dns != nil {
		err = f.dns.Point(ctx, name, addrs, ttl)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("%s %v %v", name, addrs, ttl))
	f.done = time.Now()
	return err
}

func deployInNamespace(t *testing.T) {
	bin, key, root := os.Getenv(netnsBin), os.Getenv(deployKeyVar), os.Getenv(deployRootVar)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	knownHosts := filepath.Join(home, ".ssh", "known_hosts")

	wa := fake.Start(t, waThenEcho)
	org := start(t, bin, []string{"FERRY_SECRET=" + secret, "FERRY_ADMIN=127.0.0.1:18199",
		"FERRY_ORIGIN_LISTEN=ws://127.0.0.1:18080/t", "FERRY_ORIGIN_TARGETS=chat=" + wa.Addr()}, "ferry origin starting", "origin")
	org.discardLines()

	// The operator's edge.env; the secret comes from the operator's
	// environment, as the README suggests.
	envFile := filepath.Join(dir, "edge.env")
	os.WriteFile(envFile, []byte("FERRY_EDGE_ORIGINS=ws://127.0.0.1:18080/t\nFERRY_EDGE_LISTEN=tls://:443/chat,tcp://:5222/chat\nFERRY_GRACE=30s\n"), 0o600)
	operatorEnv := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "FERRY_SECRET=" + secret}
	var outputs []string
	// deployBinary runs the ferry binary's deploy, as an operator would.
	deployBinary := func(answer string, args ...string) (string, error) {
		if args[0] != "origin" {
			args = append([]string{"edge", "-env", envFile}, args...)
		}
		cmd := exec.Command(bin, append([]string{"deploy", args[0], "-i", key}, args[1:]...)...)
		cmd.Env, cmd.Stdin = operatorEnv, strings.NewReader(answer)
		out, err := cmd.CombinedOutput()
		outputs = append(outputs, string(out))
		return string(out), err
	}
	var cmds []string
	var cmdsMu sync.Mutex
	// deployHere runs it in this process, seeing every command it runs;
	// with agentSock set, with ssh-agent's keys rather than -i.
	var agentSock string
	deployHere := func(answer string, dns *recordedDNS, args ...string) (string, error) {
		var out fake.SyncBuffer
		d := deployer{stdin: strings.NewReader(answer), stdout: &out, environ: operatorEnv,
			getenv: func(k string) string {
				switch k {
				case "HOME":
					return home
				case "SSH_AUTH_SOCK":
					return agentSock
				}
				return ""
			},
			trace: func(c string) { cmdsMu.Lock(); cmds = append(cmds, c); cmdsMu.Unlock() }}
		if dns != nil {
			d.newDNS = func(string, func(string) string) (install.DNS, error) { return dns, nil }
		}
		auth := []string{"-i", key}
		if agentSock != "" {
			auth = nil
		}
		err := d.run(context.Background(), append(append([]string{"edge", "-env", envFile, "-binary", bin}, auth...), args...))
		outputs = append(outputs, out.String())
		return out.String(), err
	}
	exists := func(p string) bool { _, err := os.Stat(filepath.Join(root, p)); return err == nil }

	t.Run("wrong host key", func(t *testing.T) {
		os.MkdirAll(filepath.Dir(knownHosts), 0o700)
		other := writeKey(t, filepath.Join(dir, "other"))
		os.WriteFile(knownHosts, append([]byte("127.0.0.1 "), other...), 0o600)
		defer os.Remove(knownHosts)
		out, err := deployBinary("yes\n", "root@127.0.0.1")
		if err == nil || !strings.Contains(out, "host key refused") || !strings.Contains(out, "known_hosts:1") {
			t.Errorf("a wrong host key: %v\n%s", err, out)
		}
		if exists("usr/local/bin/ferry") || exists("usr/local/bin/ferry.new") {
			t.Error("something was copied")
		}
	})

	t.Run("no systemd", func(t *testing.T) {
		addr := noSystemdHost(t, dir, key)
		before := hostState()
		out, err := deployBinary("yes\n", "root@"+addr)
		if err == nil || !strings.Contains(out, "has no systemd") || !strings.Contains(out, "nothing was copied") {
			t.Errorf("a host without systemd: %v\n%s", err, out)
		}
		if after := hostState(); after != before {
			t.Errorf("the host changed: %q, then %q", before, after)
		}
	})

	t.Run("first install", func(t *testing.T) {
		start := time.Now()
		out, err := deployBinary("yes\n", "root@127.0.0.1")
		took := time.Since(start)
		if err != nil {
			t.Fatalf("first install: %v\n%s", err, out)
		}
		for _, want := range []string{"not in " + knownHosts, "SHA256:", "Added 127.0.0.1", "started ferry-edge", "is ready", "Chat works",
			"https://wa.me/proxy?host=127.0.0.1&chatPort=443&mediaPort=443&chatTLS=true", "▀"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "upgrading") {
			t.Errorf("a first install says it upgrades:\n%s", out)
		}
		if st, err := os.Stat(filepath.Join(root, "etc/ferry/edge.env")); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("edge.env: %v %v", st, err)
		}
		if m := regexp.MustCompile(`checked: ([0-9.]+) s`).FindStringSubmatch(out); m != nil {
			t.Logf("measured: ferry deploy edge to a passing ferry check: %s s (the whole command: %.1f s)", m[1], took.Seconds())
		}
	})

	t.Run("upgrade with a client connected", func(t *testing.T) {
		c, err := net.Dial("tcp", "127.0.0.1:5222")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := check.Hello(c); err != nil {
			t.Fatal(err)
		}
		hello := make([]byte, len(check.ServerHello()))
		if _, err := io.ReadFull(c, hello); err != nil || !bytes.Equal(hello, check.ServerHello()) {
			t.Fatalf("server hello through the edge: %x %v", hello, err)
		}
		done := make(chan deployResult, 1)
		go func() {
			out, err := deployHere("", nil, "root@127.0.0.1")
			done <- deployResult{out, err}
		}()
		// The old edge drains once systemctl stop has sent it SIGTERM;
		// its admin endpoint says so.
		waitDraining(t, done)
		msg := "still here during the drain"
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Fatalf("the client during the drain: %q %v", buf, err)
		}
		c.Close() // the client finishes: the old edge can exit
		r := <-done
		if r.err != nil {
			t.Fatalf("upgrade: %v\n%s", r.err, r.out)
		}
		if !strings.Contains(r.out, "upgrading") || !strings.Contains(r.out, "Chat works") {
			t.Errorf("upgrade output:\n%s", r.out)
		}
		if !exists("usr/local/bin/ferry.prev") {
			t.Error("no ferry.prev to roll back to")
		}
	})

	t.Run("dns and replace, with ssh-agent", func(t *testing.T) {
		agentSock = serveAgent(t, key)
		defer func() { agentSock = "" }()
		// A real BIND, authoritative for proxy.example.test's zone, and
		// the real RFC 2136 updater.
		ns := named.Start(t)
		up, err := dnsupdate.New("rfc2136", func(k string) string {
			return map[string]string{"FERRY_DNS_SERVER": ns.Addr, "FERRY_DNS_TSIG_FILE": ns.KeyFile}[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		dns := &recordedDNS{dns: up}
		os.WriteFile(envFile, []byte("FERRY_EDGE_ORIGINS=ws://127.0.0.1:18080/t\nFERRY_EDGE_LISTEN=tls://:443/chat,tcp://:5222/chat\nFERRY_EDGE_PUBLIC_HOST=proxy.example.test\n"), 0o600)
		// The old edge is the same container reached at another address:
		// after the check and the DNS move, it is stopped.
		start := time.Now()
		out, err := deployHere("yes\nyes\n", dns, "-dns", "rfc2136", "-replace", "root@127.0.0.3", "root@127.0.0.1")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		t.Logf("measured: ferry deploy edge -dns rfc2136 -replace: the record pointed at the new edge %.1f s after the start, the whole command took %.1f s", dns.done.Sub(start).Seconds(), time.Since(start).Seconds())
		if want := "proxy.example.test [127.0.0.1] 1m0s"; len(dns.calls) != 1 || dns.calls[0] != want {
			t.Errorf("DNS updates %q, want %q", dns.calls, want)
		}
		m := new(mdns.Msg)
		m.SetQuestion("proxy.example.test.", mdns.TypeA)
		if r, _, err := (&mdns.Client{Net: "tcp"}).Exchange(m, ns.Addr); err != nil || len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != "127.0.0.1" || r.Answer[0].Header().Ttl != 60 {
			t.Errorf("the server answers %v, %v; want proxy.example.test. 60 A 127.0.0.1", r, err)
		}
		iDNS, iStop := strings.Index(out, "proxy.example.test points at 127.0.0.1"), strings.Index(out, "ferry-edge on 127.0.0.3: stopped")
		if iDNS < 0 || iStop < iDNS || !strings.Contains(out, "host=proxy.example.test") {
			t.Errorf("output:\n%s", out)
		}
		if strings.Contains(out, ns.Secret) {
			t.Error("the TSIG secret is in the output")
		}
		if c, err := net.Dial("tcp", "127.0.0.1:5222"); err == nil {
			c.Close()
			t.Error("the replaced edge still accepts clients")
		}
	})

	t.Run("origin", func(t *testing.T) {
		originEnv := filepath.Join(dir, "origin.env")
		os.WriteFile(originEnv, []byte("FERRY_ORIGIN_LISTEN=ws://127.0.0.1:28080/t\nFERRY_ADMIN=127.0.0.1:28199\nFERRY_ORIGIN_TARGETS=chat="+wa.Addr()+"\n"), 0o600)
		out, err := deployBinary("", "origin", "-env", originEnv, "root@127.0.0.1")
		if err != nil || !strings.Contains(out, "origin is ready") || !strings.Contains(out, "  ws://127.0.0.1:28080/t\n") || strings.Contains(out, "wa.me") {
			t.Fatalf("%v\n%s", err, out)
		}
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
		resp, err := client.Get("http://127.0.0.1:28080/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("the origin's tunnel listener answers a visitor %d", resp.StatusCode)
		}
	})

	for _, out := range outputs {
		if strings.Contains(out, secret) {
			t.Errorf("the secret is in the output:\n%s", out)
		}
	}
	if len(cmds) == 0 {
		t.Error("no command seen")
	}
	for _, c := range cmds {
		if strings.Contains(c, secret) {
			t.Errorf("the secret is in a command line: %q", c)
		}
	}
}

// serveAgent serves an ssh-agent holding the private key in file, and
// returns its socket's path.
func serveAgent(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: sk}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				agent.ServeAgent(keyring, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return sock
}

// deployResult is what a deploy run in the background gave.
type deployResult struct {
	out string
	err error
}

// waitDraining waits until the edge's admin endpoint says it drains; it
// fails if the deploy ends first.
func waitDraining(t *testing.T, done chan deployResult) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if resp, err := client.Get("http://127.0.0.1:8199/readyz"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(body, []byte("draining")) {
				return
			}
		}
		select {
		case r := <-done:
			done <- r
			t.Fatalf("the deploy ended before the edge drained: %v\n%s", r.err, r.out)
		case <-tick.C:
		}
	}
}

// hostState lists which of ferry's paths exist on this machine.
func hostState() string {
	var s []string
	for _, p := range []string{"/usr/local/bin/ferry", "/usr/local/bin/ferry.new", "/etc/ferry", "/etc/systemd/system/ferry-edge.service"} {
		_, err := os.Stat(p)
		s = append(s, fmt.Sprintf("%s:%t", p, err == nil))
	}
	return strings.Join(s, " ")
}

// noSystemdHost runs the real sshd on this machine (in the test's
// namespace) at 127.0.0.1:2222, in a mount namespace of its own where
// /run/systemd is empty, as on a host without systemd (even where this
// machine has one), and returns its address. key.pub may log in as root.
func noSystemdHost(t *testing.T, dir, key string) string {
	t.Helper()
	hostKey := filepath.Join(dir, "nosystemd_host_key")
	writeKey(t, hostKey)
	conf := filepath.Join(dir, "sshd_config")
	os.WriteFile(conf, []byte("Port 2222\nListenAddress 127.0.0.1\nHostKey "+hostKey+"\nAuthorizedKeysFile "+key+".pub\n"+
		"StrictModes no\nUsePAM no\nPidFile none\nPermitRootLogin prohibit-password\n"), 0o600)
	cmd := exec.Command("unshare", "-m", "sh", "-c",
		"if [ -d /run/systemd ]; then mount -t tmpfs tmpfs /run/systemd; fi; mkdir -p /run/sshd; exec /usr/sbin/sshd -D -e -f "+conf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		for range lines {
		}
		cmd.Wait()
	})
	var seen []string
	for line := range lines {
		if strings.Contains(line, "Server listening on 127.0.0.1 port 2222") {
			go func() {
				for range lines {
				}
			}()
			return "127.0.0.1:2222"
		}
		seen = append(seen, line)
	}
	t.Fatalf("sshd ended:\n%s", strings.Join(seen, "\n"))
	return ""
}

// TestDeployArgs checks that bad uses of ferry deploy exit with status 2
// before connecting anywhere, naming what is wrong, never the secret.
func TestDeployArgs(t *testing.T) {
	clearEnv(t)
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	envFile := filepath.Join(dir, "edge.env")
	os.WriteFile(envFile, []byte("FERRY_SECRET="+secret+"\nFERRY_EDGE_ORIGINS=ws://o.example/t\n"), 0o600)
	badEnv := filepath.Join(dir, "bad.env")
	os.WriteFile(badEnv, []byte("FERRY_SECRET="+secret+"\nnot a variable\n"), 0o600)
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"deploy"}, "want edge or origin"},
		{[]string{"deploy", "standalone", "root@h"}, "want edge or origin"},
		{[]string{"deploy", "edge", "-env", envFile}, "want one USER@HOST"},
		{[]string{"deploy", "edge", "-env", envFile, "root@h:99999"}, "bad port"},
		{[]string{"deploy", "edge", "root@h"}, "FERRY_SECRET"},
		{[]string{"deploy", "edge", "-env", badEnv, "root@h"}, "line 2"},
		{[]string{"deploy", "edge", "-env", envFile, "-dns", "rfc2136", "root@h"}, "FERRY_EDGE_PUBLIC_HOST"},
		{[]string{"deploy", "origin", "-env", envFile, "-replace", "root@old", "root@h"}, "for edges"},
		{[]string{"deploy", "edge", "-env", envFile, "-bogus", "root@h"}, "bogus"},
	} {
		var out, stderr strings.Builder
		code := run(tc.args, &out, &stderr)
		if code != exitConfig || !strings.Contains(stderr.String(), tc.says) {
			t.Errorf("%q: exit %d, want %d saying %q\n%s%s", tc.args, code, exitConfig, tc.says, out.String(), stderr.String())
		}
		if strings.Contains(out.String()+stderr.String(), secret) {
			t.Errorf("%q: the secret is printed", tc.args)
		}
	}
}
