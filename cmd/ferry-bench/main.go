// Command ferry-bench measures ferry on this machine against a direct
// connection and a one-hop relay (HAProxy in mode tcp when it is
// installed), with edge, origin and test server as child processes, prints
// the figures, and writes them as JSON. It is a command of its own, so that
// the ferry binary operators run carries none of it.
//
//	go build -o bin/ ./cmd/... && bin/ferry-bench [-quick] [-json FILE] [-ferry PATH] [-previous PATH] [-only PART,...] [-transports ws,...] [-sessions N]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"ferry/bench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// errUsage is a bad command line: exit status 2, as ferry's.
var errUsage = errors.New("bad arguments")

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch {
	case len(args) > 0 && args[0] == "server": // a child of the benchmark
		err = bench.Server(stdin, stdout)
	case len(args) > 0 && args[0] == "relay": // a child of the benchmark
		err = bench.Relay(args[1:], stdin, stdout)
	case len(args) > 0 && args[0] == "h3server": // a child of the benchmark
		err = bench.H3Server(args[1:], stdin, stdout)
	default:
		err = measure(ctx, args, stdout, stderr)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "ferry-bench: %v\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "ferry-bench: %v\n", err)
	return 1
}

func measure(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ferry-bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	quick := fs.Bool("quick", false, "small sizes: a check that everything runs, in seconds")
	out := fs.String("json", "bench.json", "where to write the figures as JSON")
	ferry := fs.String("ferry", "", "the ferry binary to measure (default: ferry beside this one, else on PATH)")
	only := fs.String("only", "", "measure only these parts, comma-separated: "+strings.Join(bench.Parts, ", "))
	transports := fs.String("transports", "", "tunnel transports to measure, comma-separated (default ws,wss,quic)")
	previous := fs.String("previous", "", "another ferry binary (the previous release) whose tunnels are measured in the same run, beside this one's")
	sessions := fs.Int("sessions", 0, "tunnel session setups per transport and binary in the sessions part (default 200, 5 with -quick)")
	const form = "ferry-bench [-quick] [-json FILE] [-ferry PATH] [-previous PATH] [-only PART,...] [-transports ws,...] [-sessions N]"
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *sessions < 0 {
		return fmt.Errorf("%w %q (want %s)", errUsage, args, form)
	}
	var parts []string
	if *only != "" {
		for p := range strings.SplitSeq(*only, ",") {
			if !slices.Contains(bench.Parts, p) {
				return fmt.Errorf("%w: -only %q (want parts among %s)", errUsage, p, strings.Join(bench.Parts, ", "))
			}
			parts = append(parts, p)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bin, err := ferryBinary(*ferry, self)
	if err != nil {
		return err
	}
	// Before minutes of measuring, not after: a path that cannot be
	// written would lose the run.
	f, err := os.Create(*out)
	if err != nil {
		return fmt.Errorf("%w: -json: %w (want a file that can be written)", errUsage, err)
	}
	defer f.Close()
	o := bench.Full
	if *quick {
		o = bench.Quick
	}
	o.Ferry, o.Self, o.Progress, o.Only, o.Previous = bin, self, stderr, parts, *previous
	if *sessions > 0 {
		o.Sessions = *sessions
	}
	if *previous != "" {
		if fi, err := os.Stat(*previous); err != nil || fi.IsDir() {
			return fmt.Errorf("%w: -previous %q is no ferry binary (want the path of one)", errUsage, *previous)
		}
	}
	if *transports != "" {
		o.Transports = nil
		for tr := range strings.SplitSeq(*transports, ",") {
			if tr != "ws" && tr != "wss" && tr != "quic" {
				return fmt.Errorf("%w: -transports %q (want ws, wss or quic)", errUsage, tr)
			}
			o.Transports = append(o.Transports, tr)
		}
	}
	r, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	if *quick {
		// Quick sizes are too small and too few for the figures to mean
		// much: say so where they are read, before someone quotes them.
		fmt.Fprintln(stdout, quickNote)
	}
	r.Write(stdout)
	if err := r.WriteJSON(f); err != nil {
		return err
	}
	return f.Close()
}

// quickNote heads the output of a -quick run.
const quickNote = "-quick: small sizes, a check that everything runs; the figures below are rough, do not quote them (run without -quick to measure)"

// ferryBinary is the ferry binary to measure: flag, else ferry beside self,
// else ferry on PATH.
func ferryBinary(flag, self string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	beside := filepath.Join(filepath.Dir(self), "ferry")
	if fi, err := os.Stat(beside); err == nil && !fi.IsDir() {
		return beside, nil
	}
	if p, err := exec.LookPath("ferry"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: no ferry binary beside %s or on PATH: build both (go build -o bin/ ./cmd/...) or give -ferry PATH", errUsage, self)
}
