package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"ferry/config"
)

// runHealthcheck asks the admin endpoint of FERRY_ADMIN, on this machine,
// whether ferry works, or with -ready whether it is ready: a container's
// HEALTHCHECK then needs no curl in the image.
func runHealthcheck(ctx context.Context, args []string, stdout io.Writer) error {
	path := "/healthz"
	switch {
	case len(args) == 1 && args[0] == "-ready":
		path = "/readyz"
	case len(args) > 0:
		return &config.Error{Var: "ferry healthcheck", Form: "ferry healthcheck [-ready]", Err: fmt.Errorf("bad arguments %q", args)}
	}
	var c config.Common
	if err := config.Load(&c); err != nil {
		return err
	}
	if c.Admin == "" {
		return &config.Error{Var: "FERRY_ADMIN", Err: errors.New("is empty: the admin endpoint that ferry healthcheck asks is disabled")}
	}
	host, port, _ := net.SplitHostPort(string(c.Admin))
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answers %d: %s", path, resp.StatusCode, body)
	}
	fmt.Fprintf(stdout, "%s", body)
	return nil
}
