package decoy

import (
	"net/http"
	"net/http/httputil"
	"net/url"
)

// newProxy is the decoy that reverse-proxies target. The site behind it
// answers; when it cannot be reached the visitor gets nginx's 502 page, as
// from an nginx in front of a dead upstream, not Go's empty 502.
func newProxy(target *url.URL) http.Handler {
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
		// The upstream's failures are not the visitor's business either,
		// nor the log's: the address of a stranger would be in them.
		ErrorLog: discardLogger(),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, r, http.StatusBadGateway, "", false)
		},
	}
}
