package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/ferryproxy/ferry/bench"
	"github.com/ferryproxy/ferry/config"
)

// runBench measures ferry on this machine against a direct connection and a
// one-hop relay, with edge, origin and test server as child processes of
// this same binary, prints the figures, and writes them as JSON.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ferry bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	quick := fs.Bool("quick", false, "small sizes: a check that everything runs, in seconds")
	out := fs.String("json", "bench.json", "where to write the figures as JSON")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return &config.Error{Var: "ferry bench", Form: "ferry bench [-quick] [-json FILE]", Err: fmt.Errorf("bad arguments %q", args)}
	}
	// Before minutes of measuring, not after: a path that cannot be
	// written would lose the run.
	f, err := os.Create(*out)
	if err != nil {
		return &config.Error{Var: "ferry bench -json", Form: "a file that can be written", Err: err}
	}
	defer f.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	o := bench.Full
	if *quick {
		o = bench.Quick
	}
	o.Ferry, o.Progress = self, stderr
	r, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	r.Write(stdout)
	if err := r.WriteJSON(f); err != nil {
		return err
	}
	return f.Close()
}
