// Package decoy is the web site that ferry shows everyone who does not
// speak its protocols: visitors of an origin's or an edge's tunnel listener
// without the secret, and every client of an edge's ports that does not
// speak WhatsApp. One implementation serves them all.
//
// Probers compare what a suspected proxy answers with what ordinary sites
// answer, so the decoy answers as the most common web server does: nginx
// serving a static site, with nginx's statuses, headers, error pages and
// timeouts. The handler (static.go) answers requests as nginx's static
// module does; NewServer and Listener (server.go, conn.go) shape what
// net/http itself answers before any handler runs. What still differs from
// a real nginx is listed in nginx_test.go, which compares the two.
package decoy

import (
	"net/http"
	"net/url"
	"sync/atomic"
	"time"
)

// Options say which site the decoy is. The zero value is a built-in page
// made from a random seed: one that differs at every start.
type Options struct {
	// Target, when set, is a site to reverse-proxy.
	Target *url.URL
	// Dir, when set (and Target is not), is a directory to serve, as
	// nginx's static module would: no listings, no dotfiles, nothing
	// outside it. config refuses "/" and other roots.
	Dir string
	// Seed makes the built-in page: its kind, text, size and dates follow
	// from it, so it should differ from one install to the next and stay
	// the same across restarts of one (config.InstallSeed).
	Seed []byte
	// Installed is when the host was set up, if known: the built-in
	// page's files date from a little after it.
	Installed time.Time
}

// New returns the decoy site. Serve it with NewServer, on a Listener.
func New(o Options) http.Handler {
	switch {
	case o.Target != nil:
		return newProxy(o.Target)
	case o.Dir != "":
		return static{src: dirSource(o.Dir), boundaries: new(atomic.Uint64)}
	}
	return static{src: newPage(o.Seed, o.Installed, time.Now()), boundaries: new(atomic.Uint64)}
}
