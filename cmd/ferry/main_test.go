package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"ferry/config"
	"ferry/dnstun/reliable"
	"ferry/internal/fake"
	"ferry/tunnel"
)

// binDir holds the binary that the tests which run one build once.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ferry-test")
	if err != nil {
		panic(err)
	}
	binDir = dir
	opts := []goleak.Option{goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	})}
	// kcp-go's process-wide goroutines, for the dns transport (dns.go).
	for _, f := range reliable.LeakedFunctions {
		opts = append(opts, goleak.IgnoreAnyFunction(f))
	}
	goleak.VerifyTestMain(logs.Main(m), opts...)
}

const secret = "0123456789abcdef0123456789abcdef-test"

// clearEnv removes every FERRY_ variable for the test.
func clearEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "FERRY_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// TestBadConfig checks that each bad value exits with status 2 and a
// message naming the variable.
func TestBadConfig(t *testing.T) {
	for _, tc := range []struct {
		role string
		env  map[string]string
		want string
	}{
		{"edge", map[string]string{"FERRY_EDGE_ORIGINS": "ws://o.example/t"}, "FERRY_SECRET"},
		{"edge", map[string]string{"FERRY_SECRET": "short", "FERRY_EDGE_ORIGINS": "ws://o.example/t"}, "FERRY_SECRET"},
		{"edge", map[string]string{"FERRY_SECRET": secret}, "FERRY_EDGE_ORIGINS"},
		{"edge", map[string]string{"FERRY_SECRET": secret, "FERRY_EDGE_ORIGINS": "ftp://o.example/t"}, "FERRY_EDGE_ORIGINS"},
		{"edge", map[string]string{"FERRY_SECRET": secret, "FERRY_EDGE_ORIGINS": "ws://o.example/t", "FERRY_EDGE_LISTEN": "tcp://:80"}, "FERRY_EDGE_LISTEN"},
		{"origin", map[string]string{"FERRY_SECRET": secret, "FERRY_ORIGIN_LISTEN": "quic:/x"}, "FERRY_ORIGIN_LISTEN"},
		{"origin", map[string]string{"FERRY_SECRET": secret, "FERRY_ORIGIN_TARGETS": "chat"}, "FERRY_ORIGIN_TARGETS"},
		{"origin", map[string]string{"FERRY_SECRET": secret, "FERRY_LOG_LEVEL": "loud"}, "FERRY_LOG_LEVEL"},
		{"standalone", map[string]string{"FERRY_EDGE_MAX_CONNS": "-1"}, "FERRY_EDGE_MAX_CONNS"},
		{"standalone", map[string]string{"FERRY_GRACE": "forever"}, "FERRY_GRACE"},
	} {
		clearEnv(t)
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		var stderr bytes.Buffer
		if code := run([]string{tc.role}, io.Discard, &stderr); code != exitConfig {
			t.Errorf("%s %v: exit %d, want %d (%s)", tc.role, tc.env, code, exitConfig, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.want+":") {
			t.Errorf("%s %v: %q does not name %s", tc.role, tc.env, stderr.String(), tc.want)
		}
		if strings.Contains(stderr.String(), secret) {
			t.Errorf("%s %v: the secret is printed", tc.role, tc.env)
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"sail"}, io.Discard, &stderr); code != exitConfig {
		t.Errorf("unknown command: exit %d", code)
	}
}

func TestHelpAndVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"help"}, &out, io.Discard); code != exitOK {
		t.Fatalf("help: exit %d", code)
	}
	for _, spec := range []any{&config.Edge{}, &config.Origin{}, &config.Standalone{}} {
		for _, v := range config.Vars(spec) {
			if !strings.Contains(out.String(), v.Key) || v.Desc == "" || v.Form == "" {
				t.Errorf("help lacks %s, or it has no description or form", v.Key)
			}
		}
	}
	out.Reset()
	run([]string{"help", "origin"}, &out, io.Discard)
	if !strings.Contains(out.String(), "FERRY_ORIGIN_DECOY") || strings.Contains(out.String(), "FERRY_EDGE_ORIGINS") {
		t.Errorf("help origin:\n%s", out.String())
	}
	out.Reset()
	if code := run([]string{"version"}, &out, io.Discard); code != exitOK || !versionLine.MatchString(out.String()) {
		t.Errorf("version: %d %q, want the form %s", code, out.String(), versionLine)
	}
}

// versionLine is the form of `ferry version`'s output.
var versionLine = regexp.MustCompile(`^ferry \S+ \(commit \S+, \S+; go\S+ \w+/\w+\)\n$`)

func TestVersionStamp(t *testing.T) {
	goos := runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	bi := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123abc"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
	}}
	for _, tc := range []struct {
		name, v, c, d string
		bi            *debug.BuildInfo
		want          string
	}{
		// What release/build.sh stamps: the build info's VCS stamp (off
		// there, -buildvcs=false) never overrides it.
		{"ldflags", "v1.2.0-3-gdeadbee", "deadbeef", "2026-11-30T12:00:00Z", bi,
			"ferry v1.2.0-3-gdeadbee (commit deadbeef, 2026-11-30T12:00:00Z; " + goos + ")"},
		{"go build in a checkout", "", "", "", bi, "ferry dev (commit 0123abc, 2026-01-02T03:04:05Z; " + goos + ")"},
		{"nothing known", "", "", "", nil, "ferry dev (commit unknown, unknown; " + goos + ")"},
	} {
		got := formatVersion(tc.v, tc.c, tc.d, tc.bi)
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
		if !versionLine.MatchString(got + "\n") {
			t.Errorf("%s: %q does not have the form %s", tc.name, got, versionLine)
		}
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a ferry process started by a test.
type proc struct {
	cmd   *exec.Cmd
	lines chan string // stderr, line by line
}

// build returns the path of the ferry binary, built on first use.
func build(t *testing.T) string {
	t.Helper()
	out, err := buildOnce()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(binDir, "ferry")
}

var buildOnce = sync.OnceValues(func() ([]byte, error) {
	return exec.Command("go", "build", "-o", filepath.Join(binDir, "ferry"), ".").CombinedOutput()
})

// start runs bin with args and env, and waits for its log line containing
// ready, unless ready is empty.
func start(t *testing.T, bin string, env []string, ready string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 100)}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.Line("ferry "+strings.Join(args, " "), sc.Text())
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		for range p.lines {
		}
		cmd.Wait()
	})
	if ready != "" {
		p.waitFor(t, ready)
	}
	return p
}

// waitFor waits for a log line containing s, and returns it.
func (p *proc) waitFor(t *testing.T, s string) string {
	t.Helper()
	for line := range p.lines {
		if strings.Contains(line, s) {
			return line
		}
	}
	t.Fatalf("process ended before logging %q", s)
	return ""
}

// discardLines reads the rest of p's log, so that a process that logs a
// lot is not held by a full pipe; waitFor cannot be called after it.
func (p *proc) discardLines() {
	go func() {
		for range p.lines {
		}
	}()
}

// httpGet returns the status and body of url.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestSignalDrains runs the binary: an edge and an origin relay a client;
// on SIGTERM the edge stops accepting, lets the live client finish, and
// exits 0; so does the origin. Along the way the edge's start line shows
// its configuration without the secret, and its admin endpoint is ready
// only while a session is up and it does not drain.
func TestSignalDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := build(t)
	echo := fake.Start(t, fake.Echo)
	originAddr, edgeAddr, adminAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	common := []string{"FERRY_SECRET=" + secret, "FERRY_ADMIN=", "FERRY_LOG_LEVEL=debug"}
	edg := start(t, bin, append(common, "FERRY_EDGE_LISTEN=tcp://"+edgeAddr+"/chat?decoy=off", "FERRY_EDGE_ORIGINS=ws://"+originAddr+"/t",
		"FERRY_ADMIN="+adminAddr), "", "edge")
	line := edg.waitFor(t, "ferry edge starting")
	if strings.Contains(line, secret) || !strings.Contains(line, "config.FERRY_SECRET=[redacted]") ||
		!strings.Contains(line, "config.FERRY_EDGE_ORIGINS=[ws://"+originAddr+"/t]") || !strings.Contains(line, "config.FERRY_GRACE=30s") {
		t.Errorf("start line: %s", line)
	}
	admin := "http://" + adminAddr
	if code, body := httpGet(t, admin+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no tunnel session up") {
		t.Errorf("/readyz before any origin: %d %q", code, body)
	}
	if code, _ := httpGet(t, admin+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	// `ferry healthcheck`, a container's HEALTHCHECK, asks the same.
	t.Setenv("FERRY_ADMIN", adminAddr)
	healthcheck := func(args ...string) int {
		return run(append([]string{"healthcheck"}, args...), io.Discard, io.Discard)
	}
	if healthcheck() != exitOK || healthcheck("-ready") != exitFailure {
		t.Errorf("healthcheck before any origin: %d, -ready %d", healthcheck(), healthcheck("-ready"))
	}
	originAdmin := freeAddr(t)
	org := start(t, bin, append(common, "FERRY_ORIGIN_LISTEN=ws://"+originAddr+"/t", "FERRY_ORIGIN_TARGETS=chat="+echo.Addr(),
		"FERRY_ADMIN="+originAdmin), "ferry origin starting", "origin")
	edg.waitFor(t, "tunnel up")
	// A visitor of the tunnel listener gets the decoy, and the origin counts it.
	if code, _ := httpGet(t, "http://"+originAddr+"/"); code != http.StatusOK {
		t.Errorf("decoy: %d", code)
	}
	if _, body := httpGet(t, "http://"+originAdmin+"/metrics"); !strings.Contains(body, `ferry_decoy_hits_total{listener="`+originAddr+`"} 1`) ||
		!strings.Contains(body, `ferry_tunnel_auth_failures_total{listener="`+originAddr+`"} 0`) || !strings.Contains(body, "ferry_tunnel_sessions ") {
		t.Errorf("origin /metrics:\n%s", body)
	}
	if code, _ := httpGet(t, admin+"/readyz"); code != http.StatusOK || healthcheck("-ready") != exitOK {
		t.Errorf("/readyz with a session: %d", code)
	}
	if _, body := httpGet(t, admin+"/metrics"); !strings.Contains(body, `ferry_tunnel_sessions_up{peer="ws://`+originAddr+`/t"}`) {
		t.Errorf("/metrics has no sessions gauge")
	}

	c, err := net.Dial("tcp", edgeAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoLine := func(msg string) {
		t.Helper()
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %q, %v", buf, err)
		}
	}
	echoLine("before")

	edg.cmd.Process.Signal(syscall.SIGTERM)
	edg.waitFor(t, "draining")
	if code, body := httpGet(t, admin+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Errorf("/readyz while draining: %d %q", code, body)
	}
	if c2, err := net.Dial("tcp", edgeAddr); err == nil {
		c2.Close()
		t.Error("edge accepted a client while draining")
	}
	echoLine("during the drain") // the live client still works
	c.Close()
	if err := edg.cmd.Wait(); err != nil {
		t.Errorf("edge exit: %v", err)
	}

	org.cmd.Process.Signal(syscall.SIGTERM)
	if err := org.cmd.Wait(); err != nil {
		t.Errorf("origin exit: %v", err)
	}
}

// TestListenHints checks that a port in use gets an error saying what to do.
func TestListenHints(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = listen(ln.Addr().String(), "FERRY_EDGE_LISTEN")
	if err == nil || !strings.Contains(err.Error(), "already listens") || !strings.Contains(err.Error(), "FERRY_EDGE_LISTEN") {
		t.Fatalf("listen on a port in use: %v", err)
	}
}

// TestTunnelListenHints checks that a tunnel listener's port in use gets
// the same advice, for its own socket's protocol, and names its variable;
// and that the certificate is loaded only for a listener that needs one,
// its failure naming the certificate's variable.
func TestTunnelListenHints(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	end := tunnel.End{Origin: true, Secret: secret, Log: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct{ url, ss string }{
		{"ws://" + tcp.Addr().String() + "/t", "ss -ltnp"},
		{"quic://" + udp.LocalAddr().String(), "ss -lunp"},
	} {
		u, err := tunnel.ParseListenURL(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		lns, err := listenTunnels([]tunnel.URL{u}, "FERRY_ORIGIN_LISTEN", "FERRY_ORIGIN_TLS_CERT", "", "", nil, end)
		if err == nil {
			closeAll(lns)
			t.Fatalf("%s: listened on a port in use", tc.url)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "FERRY_ORIGIN_LISTEN "+tc.url+": ") || !strings.Contains(msg, "already listens") || !strings.Contains(msg, tc.ss) {
			t.Errorf("%s: %v", tc.url, err)
		}
	}

	missing := filepath.Join(t.TempDir(), "missing.pem")
	ws := tunnel.URL{Scheme: "ws", Host: "127.0.0.1:0", Path: "/t"}
	lns, err := listenTunnels([]tunnel.URL{ws}, "FERRY_ORIGIN_LISTEN", "FERRY_ORIGIN_TLS_CERT", missing, missing, nil, end)
	if err != nil {
		t.Fatalf("a ws listener loaded the certificate: %v", err)
	}
	closeAll(lns)
	wss := tunnel.URL{Scheme: "wss", Host: "127.0.0.1:0", Path: "/t"}
	_, err = listenTunnels([]tunnel.URL{ws, wss}, "FERRY_ORIGIN_LISTEN", "FERRY_ORIGIN_TLS_CERT", missing, missing, nil, end)
	var cerr *config.Error
	if !errors.As(err, &cerr) || cerr.Var != "FERRY_ORIGIN_TLS_CERT" {
		t.Errorf("a wss listener with a missing certificate: %v, want a config.Error naming FERRY_ORIGIN_TLS_CERT", err)
	}
}

// TestLowPortHint checks that a port below 1024 that cannot be bound gets
// an error saying how to fix it. As root, it runs the binary as nobody.
func TestLowPortHint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	var out []byte
	if os.Getuid() != 0 {
		_, err := listen("127.0.0.1:81", "FERRY_EDGE_LISTEN")
		if err == nil {
			t.Skip("this user may bind low ports")
		}
		out = []byte(err.Error())
	} else {
		dir, err := os.MkdirTemp("", "ferry-lowport")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		os.Chmod(dir, 0o755)
		bin := filepath.Join(dir, "ferry")
		if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
		cmd := exec.Command(bin, "standalone")
		cmd.Env = []string{"FERRY_EDGE_LISTEN=tcp://127.0.0.1:81/chat", "FERRY_ADMIN="}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err = cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitFailure {
			t.Fatalf("exit %v, want %d: %s", err, exitFailure, out)
		}
	}
	for _, want := range []string{"CAP_NET_BIND_SERVICE", "root", "FERRY_EDGE_LISTEN"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the error does not mention %s: %s", want, out)
		}
	}
}

// TestCheckCommand checks `ferry check`'s exit statuses: 0 when chat works
// on some port, 1 when it works on none, 2 for bad arguments.
func TestCheckCommand(t *testing.T) {
	wa := fake.Start(t, fake.WhatsApp)
	_, waPort, _ := net.SplitHostPort(wa.Addr())
	dead := freeAddr(t)
	_, deadPort, _ := net.SplitHostPort(dead)
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"check", "-chat", deadPort + "," + waPort, "-media", "", "127.0.0.1"}, exitOK, "Chat works"},
		{[]string{"check", "127.0.0.1", "-chat", deadPort, "-media", "", "-timeout", "1s"}, exitFailure, "Chat does not work"},
		{[]string{"check"}, exitConfig, ""},
		{[]string{"check", "-chat", "443/ssl", "127.0.0.1"}, exitConfig, ""},
		{[]string{"check", "-bogus", "127.0.0.1"}, exitConfig, ""},
	} {
		var out, stderr strings.Builder
		if code := run(tc.args, &out, &stderr); code != tc.code || !strings.Contains(out.String(), tc.says) {
			t.Errorf("%q: exit %d, want %d\n%s%s", tc.args, code, tc.code, out.String(), stderr.String())
		}
	}
}
