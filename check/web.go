package check

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Web is what a stranger who does not speak WhatsApp gets from a port, asked
// as an Internet-wide scanner asks: on a plain chat port a GET / in the
// clear; on a TLS chat port the same inside TLS; on a media port inside TLS
// whose server name is not WhatsApp's (HOST when it is a name, none for an
// IP address). Censors block what scanners find answering as something else
// than a web server (shared/README §5), so an edge should answer these as a
// web site. It is information only: it decides nothing about chat working.
type Web struct {
	// Status is the HTTP status code of the answer, e.g. "200"; empty when
	// no web site answered.
	Status string
	// Note says in plain words what came instead of a web page, when Status
	// is empty.
	Note string
	// GivesAway is set when the port is open but answers a stranger with no
	// web page: silence, a close, TLS that fails, or an answer that is not
	// HTTP. A scanner records that port as something other than a web site.
	GivesAway bool

	// unanswered is set when the port closed, stayed silent or failed TLS
	// for the visitor: what a PROXY protocol listener does without a header.
	unanswered bool
}

// ScannerAgent is the User-Agent sent to ask for a web site: that of Censys,
// whose scans found the official proxy's addresses for Russia's blocks.
const ScannerAgent = "Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)"

// probeWeb asks host's port p for its home page, on a connection of its
// own, each step bounded by timeout.
func probeWeb(ctx context.Context, host string, p Port, timeout time.Duration) Web {
	c, err := dial(ctx, host, p, timeout)
	if err != nil {
		return Web{Note: "a second connection fails: " + connectVerdict(err)}
	}
	defer c.Close()
	if p.TLS || p.Media {
		// Not MediaServerName on media ports: a stranger's server name.
		tc, err := handshake(ctx, c, host, timeout)
		if err != nil {
			return Web{Note: "TLS fails for a visitor (" + short(err) + ")", GivesAway: true, unanswered: true}
		}
		c = tc
	}
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, scannerRequest(host)); err != nil {
		return Web{Note: "closes without answering", GivesAway: true, unanswered: true}
	}
	return readWeb(bufio.NewReader(c), timeout)
}

// scannerRequest is the request sent to ask host for its home page.
func scannerRequest(host string) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return "GET / HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: " + ScannerAgent + "\r\nAccept: */*\r\nConnection: close\r\n\r\n"
}

// readWeb reads the answer's status line and headers; the body does not
// matter.
func readWeb(br *bufio.Reader, timeout time.Duration) Web {
	if _, err := br.Peek(1); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return Web{Note: "silent until the " + timeout.String() + " timeout", GivesAway: true, unanswered: true}
		}
		return Web{Note: "closes without answering", GivesAway: true, unanswered: true}
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return Web{Note: "answers, but not with HTTP", GivesAway: true}
	}
	// The body is left unread: closing it would read it to its end.
	return Web{Status: strconv.Itoa(resp.StatusCode)}
}

// proxyNote is the Web of a PROXY protocol port: a stranger outside the
// proxy's trusted ranges (FERRY_EDGE_PROXY_FROM) gets it as a plain port, and
// from inside them it only ever talks to its load balancer.
const proxyNote = "not asked: it waits for a PROXY header, which only its load balancer sends"

// column is w in the table's WEB column.
func (w Web) column() string {
	switch {
	case w.Status != "":
		return w.Status
	case w.Note == proxyNote:
		return "PROXY"
	case w.Note != "":
		return "no web site"
	}
	return "-"
}

// writeWeb says which ports show a web site to strangers and which would
// give the proxy away to a scanner.
func writeWeb(w io.Writer, rs []Result) {
	var site, away []string
	for _, r := range rs {
		switch {
		case r.Web.Status != "":
			site = append(site, fmt.Sprintf("%d (%s)", r.Port.Port, r.Web.Status))
		case r.Web.GivesAway:
			away = append(away, fmt.Sprintf("%d (%s)", r.Port.Port, r.Web.Note))
		}
	}
	if len(site) > 0 {
		fmt.Fprintf(w, "A stranger who does not speak WhatsApp sees a web site on %s %s.\n", ports(len(site)), strings.Join(site, ", "))
	}
	switch {
	case len(away) > 0:
		fmt.Fprintf(w, "Would give the proxy away to a scanner, which records an open port that is no web site: %s %s.\n", ports(len(away)), strings.Join(away, ", "))
	case len(site) > 0:
		fmt.Fprintln(w, "No open port gives the proxy away to a scanner: each answers a stranger as a web site.")
	}
}

func ports(n int) string {
	if n == 1 {
		return "port"
	}
	return "ports"
}
