package install

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// ErrHostKeyRefused is returned when the host's key is not the one in
// known_hosts, or was not accepted on first contact.
var ErrHostKeyRefused = errors.New("host key refused")

// hostKeys checks host keys against a known_hosts file, as ssh(1) does
// with StrictHostKeyChecking=ask: a known host must show its known key; an
// unknown one is shown (its fingerprint) and asked about, and added when
// the operator answers yes.
type hostKeys struct {
	path   string
	answer *bufio.Reader // the operator's terminal
	out    io.Writer
}

// load opens the file, making it (and ~/.ssh) if need be.
func (h *hostKeys) load() (ssh.HostKeyCallback, error) {
	if err := os.MkdirAll(filepath.Dir(h.path), 0o700); err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	f, err := os.OpenFile(h.path, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	f.Close()
	cb, err := knownhosts.New(h.path)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	return cb, nil
}

// algorithms returns the key algorithms known for addr, so that a server
// offering several keys is asked for the one on file, not another that
// would look like a changed key. Nil when none is known.
func (h *hostKeys) algorithms(known ssh.HostKeyCallback, addr string) []string {
	probe, _, _, _, err := ssh.ParseAuthorizedKey([]byte(dummyKey))
	if err != nil {
		return nil
	}
	tcp, _ := net.ResolveTCPAddr("tcp", addr)
	var ke *knownhosts.KeyError
	if !errors.As(known(addr, tcp, probe), &ke) || len(ke.Want) == 0 {
		return nil
	}
	var algs []string
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			algs = append(algs, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, t)
		default:
			algs = append(algs, t)
		}
	}
	return algs
}

// dummyKey is never a real host's: it only makes knownhosts list what it
// knows about an address.
const dummyKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// callback is the ssh.HostKeyCallback of a connection.
func (h *hostKeys) callback(known ssh.HostKeyCallback) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := known(hostname, remote, key)
		var ke *knownhosts.KeyError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ke) && len(ke.Want) > 0:
			return fmt.Errorf("%w: %s shows a %s key %s, but %s:%d has another for it; if the host was reinstalled, remove that line",
				ErrHostKeyRefused, hostname, key.Type(), ssh.FingerprintSHA256(key), ke.Want[0].Filename, ke.Want[0].Line)
		case !errors.As(err, &ke):
			return fmt.Errorf("known_hosts: %w", err)
		}
		fmt.Fprintf(h.out, "%s is not in %s. Its %s key's fingerprint is %s.\nAre you sure it is this host's? Add it and connect (yes/no)? ",
			hostname, h.path, key.Type(), ssh.FingerprintSHA256(key))
		line, _ := h.answer.ReadString('\n')
		if line != "yes\n" && line != "yes" && line != "yes\r\n" {
			fmt.Fprintln(h.out)
			return fmt.Errorf("%w: %s's key was not accepted", ErrHostKeyRefused, hostname)
		}
		f, err := os.OpenFile(h.path, os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("known_hosts: %w", err)
		}
		defer f.Close()
		if _, err := fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key)); err != nil {
			return fmt.Errorf("known_hosts: %w", err)
		}
		fmt.Fprintf(h.out, "Added %s to %s.\n", hostname, h.path)
		return nil
	}
}
