package decoy

import (
	"net/http"
	"strconv"
)

// nginx's reason phrases where they differ from net/http's, which are
// RFC 9110's: a prober reads "405 Not Allowed" as nginx and "405 Method Not
// Allowed" as something else. The status line is rewritten on the way out
// (conn.go), because net/http writes its own phrase.
var reasons = map[int]string{
	301: "Moved Permanently",
	302: "Moved Temporarily",
	405: "Not Allowed",
	408: "Request Time-out",
	413: "Request Entity Too Large",
	414: "Request-URI Too Large",
	416: "Requested Range Not Satisfiable",
	494: "Request Header Too Large",
	503: "Service Temporarily Unavailable",
	504: "Gateway Time-out",
}

// reason is the phrase nginx puts after code.
func reason(code int) string {
	if r, ok := reasons[code]; ok {
		return r
	}
	return http.StatusText(code)
}

// Detail lines of nginx's special 400 pages: the title names the detail,
// the heading says "400 Bad Request".
const (
	detailHeaderTooLarge = "Request Header Or Cookie Too Large"
	detailPlainToHTTPS   = "The plain HTTP request was sent to HTTPS port"
)

// errorPage is nginx's own page for code (ngx_http_special_response.c,
// with server_tokens off), or for a 400 with detail set, the page nginx
// gives that case. Lines end in CRLF, as nginx's do.
func errorPage(code int, detail string) []byte {
	status := strconv.Itoa(code) + " " + reason(code)
	title := status
	var extra string
	if detail != "" {
		title = strconv.Itoa(code) + " " + detail
		extra = "<center>" + detail + "</center>\r\n"
	}
	return []byte("<html>\r\n<head><title>" + title + "</title></head>\r\n<body>\r\n<center><h1>" + status +
		"</h1></center>\r\n" + extra + "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
}

// writeError answers r with code and nginx's page for it. close says that
// nginx ends the connection after this answer (it does for errors found
// while reading the request).
func writeError(w http.ResponseWriter, r *http.Request, code int, detail string, close bool) {
	h := w.Header()
	for k := range h {
		// What a file answer had set (a Range's Content-Range stays,
		// as nginx's 416 keeps it, and a redirect's Location).
		if k != "Content-Range" && k != "Location" && k != "Server" && k != "Connection" {
			delete(h, k)
		}
	}
	body := errorPage(code, detail)
	h.Set("Content-Type", "text/html")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if close {
		h.Set("Connection", "close")
	}
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}
