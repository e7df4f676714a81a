package main

import (
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"ferry/internal/fake"
)

// TestCommandHelp checks that `ferry help COMMAND`, `ferry COMMAND -h` and
// `ferry COMMAND --help` print the command's help for every command, and
// never run it: ferry link -h is no link for a host called "-h".
func TestCommandHelp(t *testing.T) {
	clearEnv(t)
	for _, cmd := range []string{"edge", "origin", "standalone", "check", "link", "deploy", "version", "healthcheck", "help"} {
		for _, args := range [][]string{{"help", cmd}, {cmd, "-h"}, {cmd, "--help"}} {
			var out, stderr strings.Builder
			code := run(args, &out, &stderr)
			if code != exitOK || !strings.HasPrefix(out.String(), "usage: ferry "+cmd) || stderr.Len() > 0 {
				t.Errorf("%q: exit %d\n%s%s", args, code, out.String(), stderr.String())
			}
			if strings.Contains(out.String(), "https://wa.me/proxy?") {
				t.Errorf("%q printed a link:\n%s", args, out.String())
			}
		}
	}
	var out strings.Builder
	run([]string{"help", "edge"}, &out, &out)
	if !strings.Contains(out.String(), "FERRY_EDGE_ORIGINS") {
		t.Errorf("help edge lacks the edge's variables:\n%s", out.String())
	}
	out.Reset()
	run([]string{"help", "check"}, &out, &out)
	for _, flag := range []string{"-chat", "-media", "-timeout", "-standalone"} {
		if !strings.Contains(out.String(), "  "+flag+" ") {
			t.Errorf("help check lacks %s:\n%s", flag, out.String())
		}
	}
	var stderr strings.Builder
	if code := run([]string{"help", "sail"}, &out, &stderr); code != exitConfig || !strings.Contains(stderr.String(), "link") {
		t.Errorf("help sail: exit %d, %s", code, stderr.String())
	}
}

// TestUsageErrors checks that bad arguments exit 2 with "usage:" and the
// command's flags, and are not called bad configuration.
func TestUsageErrors(t *testing.T) {
	clearEnv(t)
	for _, tc := range []struct {
		args []string
		flag string // one of the flags the usage lists
	}{
		{[]string{"check"}, "-chat"},
		{[]string{"check", "-bogus", "127.0.0.1"}, "-timeout"},
		{[]string{"check", "-chat", "443/ssl", "127.0.0.1"}, "-media"},
		{[]string{"link", "a.example", "b.example"}, "--help"},
		{[]string{"link", "-x"}, "--help"},
		{[]string{"link", "proxy.example/path"}, "--help"},
		{[]string{"link"}, "--help"}, // no HOST and no FERRY_EDGE_PUBLIC_HOST
		{[]string{"deploy"}, "-replace"},
		{[]string{"deploy", "edge", "-bogus", "root@h.example"}, "-binary"},
		{[]string{"healthcheck", "-bogus"}, "-ready"},
	} {
		var out, stderr strings.Builder
		code := run(tc.args, &out, &stderr)
		if code != exitConfig || !strings.Contains(stderr.String(), "\nusage: ferry "+tc.args[0]) || !strings.Contains(stderr.String(), tc.flag) || strings.Contains(stderr.String(), "bad configuration") {
			t.Errorf("%q: exit %d\n%s", tc.args, code, stderr.String())
		}
	}
}

// TestLink checks ferry link's host forms (IPv6 bare and bracketed, as
// FERRY_EDGE_PUBLIC_HOST takes them), its defaults from the environment,
// and that it writes no escape sequences where its output is no terminal.
func TestLink(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"proxy.example.com"}, nil, "https://wa.me/proxy?host=proxy.example.com&chatPort=443&mediaPort=587&chatTLS=true"},
		{[]string{"2001:db8::1"}, nil, "host=2001%3Adb8%3A%3A1&"},
		{[]string{"[2001:DB8::1]"}, nil, "host=2001%3Adb8%3A%3A1&"},
		{[]string{"192.0.2.7"}, nil, "host=192.0.2.7&"},
		{nil, map[string]string{"FERRY_EDGE_PUBLIC_HOST": "a.example.com,b.example.com"}, "host=a.example.com&chatPort=443&mediaPort=587&"},
		{nil, map[string]string{"FERRY_EDGE_PUBLIC_HOST": "2001:db8::2", "FERRY_EDGE_LISTEN": "tls://:8443/chat,tcp://:7777/media"},
			"host=2001%3Adb8%3A%3A2&chatPort=8443&mediaPort=7777&chatTLS=true"},
	} {
		clearEnv(t)
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		var out, stderr strings.Builder
		code := run(append([]string{"link"}, tc.args...), &out, &stderr)
		if code != exitOK || !strings.Contains(out.String(), tc.want) {
			t.Errorf("link %q %v: exit %d, want %s\n%s%s", tc.args, tc.env, code, tc.want, out.String(), stderr.String())
		}
		if strings.Contains(out.String(), "\x1b") {
			t.Errorf("link %q: escape sequences in output that is no terminal", tc.args)
		}
		if !strings.Contains(out.String(), "█") {
			t.Errorf("link %q: no QR code drawn:\n%s", tc.args, out.String())
		}
	}

	// A pipe is an *os.File too, and no terminal.
	clearEnv(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if isTerminal(w) {
		t.Error("a pipe is taken for a terminal")
	}
	w.Close()
	if f, err := os.Open("/dev/tty"); err == nil {
		// Only where the test has a terminal of its own (not in CI).
		if !isTerminal(f) {
			t.Error("/dev/tty is not taken for a terminal")
		}
		f.Close()
	}
}

// TestDidYouMean checks that a misspelt variable or command is answered
// with the name it is closest to, and a far one without a guess.
func TestDidYouMean(t *testing.T) {
	clearEnv(t)
	t.Setenv("FERRY_EDGE_PUBLC_HOST", "proxy.example.com")
	var stderr strings.Builder
	if code := run([]string{"standalone"}, nil, &stderr); code != exitConfig || !strings.Contains(stderr.String(), "FERRY_EDGE_PUBLC_HOST: is not a ferry variable: did you mean FERRY_EDGE_PUBLIC_HOST?") {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
	clearEnv(t)
	t.Setenv("FERRY_BANANA", "1")
	stderr.Reset()
	if code := run([]string{"standalone"}, nil, &stderr); code != exitConfig || strings.Contains(stderr.String(), "did you mean") {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
	clearEnv(t)
	stderr.Reset()
	if code := run([]string{"chek", "127.0.0.1"}, nil, &stderr); code != exitConfig || !strings.Contains(stderr.String(), `did you mean "check"?`) {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
}

// TestCheckStandalone runs ferry check against a real ferry standalone
// with a plain and a PROXY protocol listener: the PROXY port is said to be
// one, with WhatsApp answering behind its header; and once WhatsApp is out
// of reach, -standalone's verdicts name no tunnel.
func TestCheckStandalone(t *testing.T) {
	wa := fake.Start(t, fake.WhatsApp)
	dead := freeAddr(t)
	plain, proxy := freeAddr(t), freeAddr(t)
	_, plainPort, _ := net.SplitHostPort(plain)
	_, proxyPort, _ := net.SplitHostPort(proxy)
	bin := build(t)
	for _, tc := range []struct {
		target string
		code   int
		says   []string
	}{
		{wa.Addr(), exitOK, []string{"Chat works", "waits for a PROXY protocol header first", "after a header: ok: WhatsApp answers"}},
		{dead, exitFailure, []string{"Chat does not work", "the proxy cannot reach WhatsApp"}},
	} {
		p := start(t, bin, []string{
			"FERRY_ADMIN=", "FERRY_ORIGIN_TARGETS=chat=" + tc.target,
			"FERRY_EDGE_LISTEN=tcp://" + plain + "/chat,proxy+tcp://" + proxy + "/chat",
		}, "ferry standalone starting", "standalone")
		p.discardLines()
		var out strings.Builder
		code := run([]string{"check", "-chat", plainPort + "," + proxyPort, "-media", "", "-timeout", "5s", "-standalone", "127.0.0.1"}, &out, io.Discard)
		if code != tc.code {
			t.Errorf("target %s: exit %d, want %d\n%s", tc.target, code, tc.code, out.String())
		}
		for _, s := range tc.says {
			if !strings.Contains(out.String(), s) {
				t.Errorf("target %s: output lacks %q:\n%s", tc.target, s, out.String())
			}
		}
		if strings.Contains(out.String(), "tunnel") {
			t.Errorf("target %s: a standalone's check mentions a tunnel:\n%s", tc.target, out.String())
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.cmd.Wait()
	}
}
