package decoy

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

// TokenCookie is the cookie an edge's upgrade carries its token in
// (tunnel/token.go): the proxy decoy never passes it on.
const TokenCookie = "sid"

// newProxy is the decoy that reverse-proxies target. The site behind it
// answers; when it cannot be reached the visitor gets nginx's 502 page, as
// from an nginx in front of a dead upstream, not Go's empty 502.
func newProxy(target *url.URL) http.Handler {
	return &httputil.ReverseProxy{
		// Rewrite without SetXForwarded: the decoy site learns nothing
		// of the visitor's address.
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			// An edge's token is nobody else's business, even a stale one:
			// its cookie goes, the visitor's other cookies stay.
			for _, h := range []string{"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions", "Sec-Websocket-Protocol"} {
				r.Out.Header.Del(h)
			}
			var keep []string
			for _, c := range r.In.Cookies() {
				if c.Name != TokenCookie {
					keep = append(keep, c.String())
				}
			}
			r.Out.Header.Del("Cookie")
			if len(keep) > 0 {
				r.Out.Header.Set("Cookie", strings.Join(keep, "; "))
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
