package main

import (
	"fmt"
	"io"
	"strings"

	"ferry/config"
	"ferry/link"
)

// runLink prints the share link of the edge at host, with the ports of
// FERRY_EDGE_LISTEN, and its QR code.
func runLink(args []string, stdout io.Writer) error {
	if len(args) != 1 || args[0] == "" || strings.ContainsAny(args[0], "/:@ ?&") {
		return &config.Error{Var: "ferry link", Form: "ferry link HOST, with HOST a host name or IPv4 address", Err: fmt.Errorf("bad arguments %q", args)}
	}
	var c config.Clients
	if err := config.Load(&c); err != nil {
		return err
	}
	u := link.URL(args[0], link.PortsOf(c.Listen))
	fmt.Fprintln(stdout, u)
	fmt.Fprintln(stdout)
	return link.WriteTerminal(stdout, u)
}
