// Package named runs a real BIND (named) on loopback for tests: an
// authoritative server of one zone that takes TSIG-signed dynamic updates,
// for the tests of package dnsupdate and of ferry deploy -dns.
package named

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry/internal/daemon"
)

// Server is a BIND run by one test on loopback, authoritative for Zone,
// whose update-policy lets Key change any name in it, EdgeKeyName only
// Name's A and AAAA records (the README's policy), and IdleKeyName (known,
// valid) nothing.
type Server struct {
	Addr       string // 127.0.0.1:PORT, UDP and TCP
	KeyFile    string // Key's file, as tsig-keygen writes it
	Secret     string // Key's secret
	IdleKey    string // IdleKeyName's NAME:ALGORITHM:SECRET
	IdleSecret string
	EdgeKey    string // EdgeKeyName's NAME:ALGORITHM:SECRET
}

const (
	Zone        = "example.test."
	Name        = "edge.example.test."
	Key         = "ferry-test"
	IdleKeyName = "ferry-idle"
	EdgeKeyName = "ferry-edge"
)

// Start runs named in the foreground with a temp directory of its own
// and stops it by its pid when the test ends. It skips the test when named
// is not installed, or fails it when CI is set: CI installs bind9.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("named")
	if err != nil {
		bin = "/usr/sbin/named" // not on a user's PATH on Debian
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("named is not installed; CI installs it (Debian: apt-get install bind9)")
			}
			t.Skip("named is not installed (Debian: apt-get install bind9); CI installs it")
		}
	}
	n := &Server{Secret: RandomSecret(), IdleSecret: RandomSecret()}
	n.IdleKey = IdleKeyName + ":hmac-sha256:" + n.IdleSecret
	n.EdgeKey = EdgeKeyName + ":hmac-sha512:" + RandomSecret()
	// A port found free may be taken before named binds it; named then
	// exits, and another port is tried.
	for range 3 {
		if n.start(t, bin) {
			return n
		}
	}
	t.Fatal("named did not start on three ports in a row")
	return nil
}

// RandomSecret is a fresh HMAC secret, in base64 as BIND writes it.
func RandomSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func (n *Server) start(t testing.TB, bin string) bool {
	t.Helper()
	dir := t.TempDir()
	port := daemon.FreeUDPTCPPort(t)
	n.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	n.KeyFile = filepath.Join(dir, "ferry-test.key")
	key := fmt.Sprintf("key %q {\n\talgorithm hmac-sha256;\n\tsecret %q;\n};\n", Key, n.Secret)
	conf := fmt.Sprintf(`options {
	directory %[1]q;
	pid-file "%[1]s/named.pid";
	session-keyfile "%[1]s/session.key";
	managed-keys-directory %[1]q;
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	notify no;
	dnssec-validation no;
};
controls { };
include %[3]q;
key %[4]q { algorithm hmac-sha256; secret %[5]q; };
key %[7]q { algorithm hmac-sha512; secret %[8]q; };
zone "example.test" {
	type primary;
	file "%[1]s/example.test.db";
	update-policy {
		grant %[6]q zonesub ANY;
		grant %[7]q name %[9]s A AAAA;
	};
};
`, dir, port, n.KeyFile, IdleKeyName, n.IdleSecret, Key, EdgeKeyName, strings.SplitN(n.EdgeKey, ":", 3)[2], Name)
	zone := `$TTL 300
@	IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 300
@	IN NS ns.example.test.
ns	IN A 127.0.0.1
edge	IN A 192.0.2.1
edge	IN AAAA 2001:db8::1
other	IN A 192.0.2.99
`
	for name, data := range map[string]string{"named.conf": conf, "ferry-test.key": key, "example.test.db": zone} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"-g", "-4", "-n", "1", "-c", filepath.Join(dir, "named.conf")}
	if os.Geteuid() == 0 {
		// As root, named would change to the bind user, who cannot read
		// the test's temp directory.
		args = append(args, "-u", "root")
	}
	cmd := exec.Command(bin, args...)
	out := daemon.NewOutput("running\n")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	select {
	case <-out.Ready:
	case <-exited:
		if strings.Contains(out.String(), "address in use") {
			t.Logf("named: port %d taken, trying another", port)
			return false
		}
		t.Fatalf("named exited:\n%s", out.String())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("named is not running after 30s:\n%s", out.String())
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("named's output:\n%s", out.String())
		}
	})
	return true
}
