package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Target is USER@HOST[:PORT].
type Target struct {
	User, Host string
	Port       int
}

// ParseTarget parses USER@HOST[:PORT] (HOST may be [IPv6]); the user is
// root when left out.
func ParseTarget(s string) (Target, error) {
	t := Target{User: "root", Port: 22}
	if u, rest, ok := strings.Cut(s, "@"); ok {
		t.User, s = u, rest
	}
	t.Host = s
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return t, fmt.Errorf("%q: bad port", p)
		}
		t.Host, t.Port = h, n
	}
	t.Host = strings.Trim(t.Host, "[]")
	if t.User == "" || t.Host == "" || strings.ContainsAny(t.Host+t.User, "/ @") {
		return t, errors.New("want USER@HOST[:PORT]")
	}
	return t, nil
}

// Addr is HOST:PORT.
func (t Target) Addr() string { return net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) }

func (t Target) String() string { return t.User + "@" + t.Addr() }

// signers returns the keys to offer: keyFile's when given, then ssh-agent's
// (at SSH_AUTH_SOCK).
func signers(keyFile, agentSock string) (ssh.AuthMethod, io.Closer, error) {
	var own []ssh.Signer
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("-i: %w", err)
		}
		s, err := ssh.ParsePrivateKey(b)
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, nil, fmt.Errorf("-i %s is protected by a passphrase: add it to ssh-agent (ssh-add %s) and leave out -i", keyFile, keyFile)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("-i %s: %w", keyFile, err)
		}
		own = append(own, s)
	}
	var closer io.Closer = io.NopCloser(nil)
	var ag agent.ExtendedAgent
	if agentSock != "" {
		if c, err := net.Dial("unix", agentSock); err == nil {
			ag, closer = agent.NewClient(c), c
		}
	}
	if len(own) == 0 && ag == nil {
		return nil, nil, errors.New("no SSH key: give -i KEY, or run ssh-agent with the key added")
	}
	return ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		if ag == nil {
			return own, nil
		}
		more, err := ag.Signers()
		if err != nil {
			return own, nil
		}
		return append(own, more...), nil
	}), closer, nil
}

// host is one SSH connection to a host, running commands as root (with
// sudo -n when the login is not root's).
type host struct {
	target Target
	client *ssh.Client
	closer io.Closer
	sudo   string
	trace  func(cmd string) // each command run, when set
}

// dialHost connects to t over SSH.
func dialHost(ctx context.Context, t Target, auth ssh.AuthMethod, keys *hostKeys) (*host, error) {
	known, err := keys.load()
	if err != nil {
		return nil, err
	}
	conf := &ssh.ClientConfig{
		User:              t.User,
		Auth:              []ssh.AuthMethod{auth},
		HostKeyCallback:   keys.callback(known),
		HostKeyAlgorithms: keys.algorithms(known, t.Addr()),
		Timeout:           15 * time.Second,
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", t.Addr())
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", t, err)
	}
	conn, chans, reqs, err := ssh.NewClientConn(c, t.Addr(), conf)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("ssh %s: %w", t, err)
	}
	h := &host{target: t, client: ssh.NewClient(conn, chans, reqs)}
	if t.User != "root" {
		h.sudo = "sudo -n "
	}
	return h, nil
}

func (h *host) Close() error { return h.client.Close() }

// run runs cmd (sh syntax; never a secret in it: secrets go through
// stdin) and returns its standard output; a failure carries its standard
// error. The context's end closes the session.
func (h *host) run(ctx context.Context, cmd string, stdin io.Reader) (string, error) {
	s, err := h.client.NewSession()
	if err != nil {
		return "", fmt.Errorf("ssh session: %w", err)
	}
	defer s.Close()
	var stdout, stderr bytes.Buffer
	s.Stdin, s.Stdout, s.Stderr = stdin, &stdout, &stderr
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	if h.sudo != "" {
		cmd = h.sudo + "sh -c " + shellQuote(cmd)
	}
	if h.trace != nil {
		h.trace(cmd)
	}
	if err := s.Run(cmd); err != nil {
		if ctx.Err() != nil {
			return stdout.String(), ctx.Err()
		}
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
