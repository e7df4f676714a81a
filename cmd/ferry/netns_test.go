package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Tests that need addresses or names of their own run the test binary
// again inside a network namespace they make: netnsInner names the test
// in that inner run, and netnsBin is the ferry binary, built outside.
const (
	netnsInner = "NETNS_TEST_INNER"
	netnsBin   = "NETNS_TEST_BIN"
)

// inNamespace runs test (the calling test's own name) inside a new network
// namespace with its loopback up and whatever setup adds, and there calls
// inner, which finds the ferry binary in netnsBin.
func inNamespace(t *testing.T, test string, inner func(t *testing.T), setup func(name string)) {
	if os.Getenv(netnsInner) == test {
		inner(t)
		return
	}
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := exec.LookPath("ip"); err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root and ip(8) for a network namespace; CI runs as root")
		}
		t.Skip("needs root and ip(8) for a network namespace")
	}
	bin := build(t)
	name := fmt.Sprintf("ferry-%s-%d", strings.ToLower(strings.TrimPrefix(test, "Test")), os.Getpid())
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ipCmd(t, "-n", name, "link", "set", "lo", "up")
	setup(name)

	cmd := exec.Command("ip", "netns", "exec", name, os.Args[0], "-test.run", "^"+test+"$", "-test.v")
	cmd.Env = append(os.Environ(), netnsInner+"="+test, netnsBin+"="+bin)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+test)) {
		t.Fatalf("inside the namespace: %v\n%s", err, out)
	}
	// Figures the inner run measured, for the closing notes of issues.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "measured: ") {
			t.Log(strings.TrimSpace(line))
		}
	}
}

// ipCmd runs ip(8) with args.
func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
