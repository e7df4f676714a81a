package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// bootSystemd boots a real systemd, with the real sshd as its only service,
// in a container made from this machine's own files (systemd is not PID 1
// here, and no container images can be pulled): an overlay of / whose
// writes land in a tmpfs, booted by systemd-nspawn in network namespace ns.
// Its sshd is then at 127.0.0.1:22 inside ns, root's authorized key is
// authorizedKey, and it returns the container's root directory, through
// which a test sees what was installed. The container is shut down, and
// everything it wrote is gone, when the test ends.
func bootSystemd(t *testing.T, ns string, authorizedKey []byte) string {
	t.Helper()
	base := t.TempDir()
	upper, work, root := filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "root")
	if err := unix.Mount("tmpfs", base, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(base, unix.MNT_DETACH) })
	for _, d := range []string{upper, work, root} {
		os.Mkdir(d, 0o755)
	}
	if err := unix.Mount("overlay", root, "overlay", 0, "lowerdir=/,upperdir="+upper+",workdir="+work); err != nil {
		t.Fatalf("overlay of /: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })

	// What the container needs besides the host's files: a target that
	// starts sshd and nothing else (the host's nginx and the like would
	// take the edge's ports), a machine id of its own, root's key, and
	// none of a ferry the host itself may have installed.
	id := make([]byte, 16)
	rand.Read(id)
	for _, p := range []string{"etc/ferry", "usr/local/bin/ferry", "usr/local/bin/ferry.prev",
		"etc/systemd/system/ferry-edge.service", "etc/systemd/system/ferry-origin.service", "root/.ssh"} {
		os.RemoveAll(filepath.Join(root, p))
	}
	files := map[string]string{
		"etc/systemd/system/ferrytest.target": "[Unit]\nDescription=ferry deploy's test: sshd only\nWants=ssh.service\nAfter=ssh.service\n",
		"etc/machine-id":                      hex.EncodeToString(id) + "\n",
		"root/.ssh/authorized_keys":           string(authorizedKey),
	}
	for p, body := range files {
		path := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(root, "etc/machine-id"), 0o444)
	os.Chmod(filepath.Join(root, "etc/systemd/system/ferrytest.target"), 0o644)

	// systemd-nspawn says READY=1 on NOTIFY_SOCKET once the container's
	// systemd has reached its target, sshd included (Type=notify).
	notify := filepath.Join(t.TempDir(), "notify")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	var out bytes.Buffer
	cmd := exec.Command("systemd-nspawn", "--quiet", "--keep-unit", "--register=no", "-D", root, "-M", "ferrytest",
		"--network-namespace-path=/run/netns/"+ns, "--notify-ready=yes", "--console=pipe", "-b", "--", "systemd.unit=ferrytest.target")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("systemd-nspawn: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		// SIGTERM makes systemd-nspawn power the container off.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("the container did not power off in 30 s:\n%s", out.String())
		}
	})
	ready := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := sock.Read(buf)
			if err != nil {
				ready <- err
				return
			}
			if strings.Contains("\n"+string(buf[:n])+"\n", "\nREADY=1\n") {
				ready <- nil
				return
			}
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("notify socket: %v", err)
		}
	case err := <-exited:
		exited <- err
		t.Fatalf("systemd-nspawn ended: %v\n%s", err, out.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("the container's systemd was not ready in 60 s:\n%s", out.String())
	}
	return root
}
