package install

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func newHostKey(t *testing.T) ssh.PublicKey {
	pk, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestHostKeys: an unknown host is asked about and added on yes, refused
// otherwise; a known host with another key is refused.
func TestHostKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ssh", "known_hosts")
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2200}
	key := newHostKey(t)
	try := func(answer string, k ssh.PublicKey) (string, error) {
		var out strings.Builder
		h := &hostKeys{path: path, answer: bufio.NewReader(strings.NewReader(answer)), out: &out}
		known, err := h.load()
		if err != nil {
			t.Fatal(err)
		}
		err = h.callback(known)("127.0.0.1:2200", addr, k)
		return out.String(), err
	}
	if out, err := try("no\n", key); !errors.Is(err, ErrHostKeyRefused) || !strings.Contains(out, ssh.FingerprintSHA256(key)) {
		t.Errorf("unknown, answered no: %v %q", err, out)
	}
	if out, err := try("yes\n", key); err != nil || !strings.Contains(out, "Added") {
		t.Errorf("unknown, answered yes: %v %q", err, out)
	}
	if b, _ := os.ReadFile(path); !strings.HasPrefix(string(b), "[127.0.0.1]:2200 ssh-ed25519 ") {
		t.Errorf("known_hosts: %q", b)
	}
	if out, err := try("", key); err != nil || out != "" {
		t.Errorf("known: %v %q", err, out)
	}
	if _, err := try("yes\n", newHostKey(t)); !errors.Is(err, ErrHostKeyRefused) || !strings.Contains(err.Error(), "known_hosts:1") {
		t.Errorf("another key: %v", err)
	}
}

func TestParseTarget(t *testing.T) {
	for in, want := range map[string]string{
		"root@203.0.113.7":        "root@203.0.113.7:22",
		"admin@edge.example:2222": "admin@edge.example:2222",
		"edge.example":            "root@edge.example:22",
		"ops@[2001:db8::1]:22":    "ops@[2001:db8::1]:22",
	} {
		if got, err := ParseTarget(in); err != nil || got.String() != want {
			t.Errorf("%q: %v %v, want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "@host", "root@", "root@host:0", "root@host:x", "a@b@c"} {
		if _, err := ParseTarget(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
