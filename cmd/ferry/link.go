package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"ferry/config"
	"ferry/link"
)

const linkForm = "ferry link [HOST]"

// runLink prints the share link of the edge at host, with the ports of
// FERRY_EDGE_LISTEN, and its QR code. With no host it takes the first of
// FERRY_EDGE_PUBLIC_HOST, so that on the edge's own machine (its
// environment file sourced) `ferry link` alone prints what phones need.
func runLink(args []string, stdout io.Writer) error {
	bad := func(err error) error { return &config.Error{Var: "ferry link", Form: linkForm, Err: err} }
	if len(args) > 1 || (len(args) == 1 && strings.HasPrefix(args[0], "-")) {
		return bad(fmt.Errorf("want at most one HOST, got %q", args))
	}
	var c config.Clients
	if err := config.Load(&c); err != nil {
		return err
	}
	var host string
	switch {
	case len(args) == 1:
		// As FERRY_EDGE_PUBLIC_HOST takes it, and an IPv6 address also in
		// brackets, as it is written in a URL.
		var h config.Hosts
		arg := args[0]
		if strings.HasPrefix(arg, "[") && strings.HasSuffix(arg, "]") {
			arg = arg[1 : len(arg)-1]
		}
		if err := h.Decode(arg); err != nil || len(h) != 1 {
			return bad(fmt.Errorf("%q: want a host name, an IPv4 address, or an IPv6 address (bare or in brackets)", args[0]))
		}
		host = h[0]
	case len(c.PublicHost) > 0:
		host = c.PublicHost[0]
	default:
		return bad(fmt.Errorf("want a HOST, or FERRY_EDGE_PUBLIC_HOST set"))
	}
	u := link.URL(host, link.PortsOf(c.Listen))
	fmt.Fprintln(stdout, u)
	fmt.Fprintln(stdout)
	if isTerminal(stdout) {
		return link.WriteTerminal(stdout, u)
	}
	// A file or a pipe: escapes would be noise in it, and a QR code drawn
	// in block characters still scans from a screen that shows it.
	return link.WritePlain(stdout, u)
}

// isTerminal reports whether w is a terminal (a character device), where
// colours show as colours rather than as escape sequences.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
