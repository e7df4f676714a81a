package config

import (
	"crypto/rand"
	"crypto/sha256"
	"os"
	"strings"
	"time"
)

// Install is what sets one install of ferry apart from every other, for the
// decoy's built-in page (decoy.Options): its text, size and dates follow
// from Seed, so a scanner finds no two hosts with the same page, and one
// host shows the same page across restarts.
type Install struct {
	Seed []byte
	// Since is when the host was set up, as far as can be told (zero if
	// not): the built-in page dates from a little after it.
	Since time.Time
}

// installIDs are where a host keeps its machine ID, written once when it
// is set up (systemd, then D-Bus's older place).
var installIDs = []string{"/etc/machine-id", "/var/lib/dbus/machine-id"}

// ReadInstall makes this host's Install for role ("edge", "origin",
// "standalone"). The seed is a hash of the machine ID, the host name, role
// and secret. The machine ID and the host name set installs apart: an
// origin and all its edges share the secret, so a page made from the
// secret alone would link them. The secret sets apart hosts cloned from
// one image (the same machine ID and host name) that belong to different
// operators; role, an edge and an origin on one host. In a container
// without a machine ID, the container's host name and the date its
// /etc/hostname was written stand in (Docker keeps both across restarts;
// a Kubernetes pod gets a new name, and so a new page, when it is made
// anew). With neither, the seed is random, and the page changes at each
// start, which links nothing.
func ReadInstall(role string, secret Secret) Install {
	hostname, _ := os.Hostname()
	return readInstall(installIDs, "/etc/hostname", hostname, role, string(secret))
}

func readInstall(idFiles []string, hostnameFile, hostname, role, secret string) Install {
	var in Install
	var id string
	for _, f := range idFiles {
		b, err := os.ReadFile(f)
		if id = strings.TrimSpace(string(b)); err == nil && id != "" {
			if fi, err := os.Stat(f); err == nil {
				in.Since = fi.ModTime()
			}
			break
		}
	}
	if id == "" {
		if fi, err := os.Stat(hostnameFile); err == nil {
			in.Since = fi.ModTime()
		}
	}
	if id == "" && hostname == "" {
		in.Seed = make([]byte, 32)
		rand.Read(in.Seed)
		return in
	}
	// The date only stands in for a missing machine ID: a machine ID's
	// file may be rewritten, and the page should not change then.
	created := ""
	if id == "" {
		created = in.Since.UTC().Format(time.RFC3339Nano)
	}
	h := sha256.New()
	for _, part := range []string{"decoy page", id, hostname, created, role, secret} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	in.Seed = h.Sum(nil)
	return in
}
