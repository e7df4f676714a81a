package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"ferry/check"
	"ferry/config"
)

// errChatFails ends `ferry check` with exit status 1; the table has said why.
var errChatFails = errors.New("chat does not work")

const checkForm = "ferry check [-chat 443/tls,80,5222] [-media 587] [-timeout 10s] [-standalone] HOST"

// runCheck tests the proxy at HOST as the app would, prints a table and a
// diagnosis, and fails unless chat works on some port. The table also shows
// what each port answers a scanner (a web site or not); that is information
// only and never changes the exit status.
func runCheck(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ferry check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	chat := fs.String("chat", "443/tls,80,5222", "chat ports: PORT, or PORT/tls where the proxy ends TLS")
	media := fs.String("media", "587", "media ports")
	timeout := fs.Duration("timeout", 10*time.Second, "limit of each step")
	standalone := fs.Bool("standalone", false, "HOST is a standalone: it has no tunnel to blame")
	// The host may come first or last.
	var host string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		host, args = args[0], args[1:]
	}
	bad := func(err error) error { return &config.Error{Var: "ferry check", Form: checkForm, Err: err} }
	if err := fs.Parse(args); err != nil {
		return bad(err)
	}
	if host == "" && fs.NArg() == 1 {
		host = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return bad(fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if host == "" || strings.ContainsAny(host, "/@ ?&") {
		return bad(fmt.Errorf("want one HOST, a host name or IP address"))
	}
	if *timeout <= 0 {
		return bad(fmt.Errorf("-timeout %v is not positive", *timeout))
	}
	cp, err := check.ParsePorts(*chat, false)
	if err != nil {
		return bad(fmt.Errorf("-chat %w", err))
	}
	mp, err := check.ParsePorts(*media, true)
	if err != nil {
		return bad(fmt.Errorf("-media %w", err))
	}
	host = strings.Trim(host, "[]")
	rs := check.RunTarget(ctx, host, append(cp, mp...), *timeout, *standalone)
	check.Write(stdout, host, rs)
	if !check.Works(rs) {
		return errChatFails
	}
	return nil
}
