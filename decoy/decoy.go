// Package decoy is the web site that ferry shows everyone who does not
// speak its protocols: visitors of an origin's or an edge's tunnel listener
// without the secret, and every client of an edge's ports that does not
// speak WhatsApp. One implementation serves them all.
package decoy

import (
	"embed"
	"io/fs"
	"net/http"
	"net/http/httputil"
	"net/url"
)

// New returns the web site: the site at target reverse-proxied when target
// is set, else the files of dir when it is set, else a built-in page.
// Probers compare what a suspected proxy answers with what ordinary sites
// answer, so nothing in any of these hints at ferry: no 401, no header of
// its own, and the built-in page is served as files are, by net/http's file
// server (index at /, 404 for a missing path, HEAD, ranges, conditional
// requests), as a directory would be.
func New(target *url.URL, dir string) http.Handler {
	switch {
	case target != nil:
		return &httputil.ReverseProxy{
			// Rewrite without SetXForwarded: the decoy site learns nothing
			// of the visitor's address.
			Rewrite: func(r *httputil.ProxyRequest) {
				r.SetURL(target)
				// An edge's token is nobody else's business, even a stale one.
				for _, h := range []string{"Authorization", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions", "Sec-Websocket-Protocol"} {
					r.Out.Header.Del(h)
				}
			},
		}
	case dir != "":
		return http.FileServer(http.Dir(dir))
	}
	// fs.Sub fails only for an invalid name, and "site" is valid.
	sub, _ := fs.Sub(site, "site")
	return http.FileServerFS(sub)
}

// site is the built-in placeholder page, as a freshly set-up host shows. Embedded
// files carry no modification time, so the file server sends no
// Last-Modified that could be the same on every ferry.
//
//go:embed site
var site embed.FS
