// Package decoy is what a tunnel listener shows visitors without the
// secret: an ordinary web site.
package decoy

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
)

// New returns what a visitor without the secret sees: the site at
// target reverse-proxied when target is set, else the files of dir when it
// is set, else a built-in page. Probers compare what a suspected proxy
// answers with what ordinary sites answer, so nothing in any of these hints
// at ferry: no 401, no special header, the same answer on every path.
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
	return builtinDecoy{}
}

// builtinDecoy answers every path and method with the same small page.
type builtinDecoy struct{}

const decoyLastModified = "Tue, 14 Jan 2025 09:21:07 GMT"

const decoyPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Welcome</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 40em; margin: 4em auto; padding: 0 1em; color: #333; line-height: 1.5; }
h1 { font-weight: 400; }
footer { margin-top: 3em; font-size: 0.85em; color: #888; }
</style>
</head>
<body>
<h1>Welcome</h1>
<p>This site is being set up. Please check back soon.</p>
<p>If you are the owner of this site, upload your content to get started.</p>
<footer>&copy; 2025</footer>
</body>
</html>
`

func (builtinDecoy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(decoyPage)))
	h.Set("Last-Modified", decoyLastModified)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write([]byte(decoyPage))
	}
}
