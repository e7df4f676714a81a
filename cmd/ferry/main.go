// Command ferry is a WhatsApp proxy split in two: an edge that users'
// phones connect to, and an origin on an unblocked network, joined by a
// tunnel. `ferry help` lists the roles and their variables.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"ferry/config"
)

// version, commit and date are set by release/build.sh with -ldflags
// "-X main.version=... -X main.commit=... -X main.date=...": `git describe`,
// the commit's hash and the commit's date (not the build's, so that two
// builds of one commit are identical). Empty in a plain `go build`.
var (
	version = ""
	commit  = ""
	date    = ""
)

const usage = `ferry: a WhatsApp proxy that splits into a disposable edge and a hidden origin

Usage:
  ferry edge          run an edge: client listeners, tunnels to origins
  ferry origin        run an origin: accepts tunnels, dials allowed targets
  ferry standalone    client listeners that dial the targets directly
  ferry check HOST    test the proxy at HOST from outside, as the app would; exit 0 only if chat works
                      (-chat 443/tls,80,5222 -media 587 -timeout 10s)
  ferry link HOST     print the wa.me share link of the edge at HOST, and its QR code
  ferry deploy edge|origin [-i KEY] [-env FILE] [-binary FILE] [-dns PROVIDER] [-replace OLDHOST] USER@HOST[:PORT]
                      install or upgrade ferry on a host over SSH (systemd), check it, print the share link
  ferry healthcheck   ask this machine's ferry (at FERRY_ADMIN) whether it works; -ready: whether it is ready
  ferry version       print the version
  ferry help [ROLE]   list the environment variables, with forms and defaults
                      (ROLE: edge, origin, standalone, or deploy for -dns)

Configuration is read from FERRY_* environment variables only.
`

// Exit statuses, as ../shared/CONTRACT.md fixes them.
const (
	exitOK      = 0
	exitFailure = 1
	exitConfig  = 2
)

func main() {
	// ferry checks UDP buffers itself and says what to set, once
	// (tunnel.UDPBufferAdvice); quic-go's own warning would repeat it raw.
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitConfig
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		// The first signal starts the drain; a second one kills at once.
		<-ctx.Done()
		stop()
	}()

	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "edge":
		err = runEdge(ctx, stderr)
	case "origin":
		err = runOrigin(ctx, stderr)
	case "standalone":
		err = runStandalone(ctx, stderr)
	case "link":
		err = runLink(rest, stdout)
	case "check":
		err = runCheck(ctx, rest, stdout)
	case "deploy":
		err = runDeploy(ctx, rest, stdout)
	case "healthcheck":
		err = runHealthcheck(ctx, rest, stdout)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help", "--help", "-h":
		return help(rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "ferry: unknown command %q\n\n%s", cmd, usage)
		return exitConfig
	}
	var cerr *config.Error
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &cerr):
		fmt.Fprintf(stderr, "ferry: bad configuration: %v\n", err)
		return exitConfig
	default:
		fmt.Fprintf(stderr, "ferry: %v\n", err)
		return exitFailure
	}
}

// versionString is `ferry version`'s line, from the -ldflags values or,
// in a plain `go build` of a checkout, the VCS stamp Go writes instead.
func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(version, commit, date, bi)
}

// formatVersion says "ferry VERSION (commit COMMIT, DATE; GOVERSION
// OS/ARCH)", filling what -ldflags left empty from bi (which may be nil).
func formatVersion(v, c, d string, bi *debug.BuildInfo) string {
	if bi != nil {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && c == "":
				c = s.Value
			case s.Key == "vcs.time" && d == "":
				d = s.Value
			}
		}
	}
	return fmt.Sprintf("ferry %s (commit %s, %s; %s %s/%s)",
		orDefault(v, "dev"), orDefault(c, "unknown"), orDefault(d, "unknown"), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func help(args []string, stdout, stderr io.Writer) int {
	roles := map[string]any{"edge": &config.Edge{}, "origin": &config.Origin{}, "standalone": &config.Standalone{}, "deploy": &config.DNS{}}
	order := []string{"edge", "origin", "standalone", "deploy"}
	if len(args) > 0 {
		if _, ok := roles[args[0]]; !ok {
			fmt.Fprintf(stderr, "ferry: unknown role %q: want edge, origin, standalone or deploy\n", args[0])
			return exitConfig
		}
		order = args[:1]
	} else {
		fmt.Fprint(stdout, usage)
	}
	for _, role := range order {
		what := "ferry " + role
		if role == "deploy" {
			what = "ferry deploy -dns (read on the operator's machine, never copied to the host)"
		}
		fmt.Fprintf(stdout, "\nEnvironment of %s:\n", what)
		for _, v := range config.Vars(roles[role]) {
			fmt.Fprintf(stdout, "\n  %s\n      %s\n      form:    %s\n", v.Key, v.Desc, v.Form)
			if v.Default != "" {
				fmt.Fprintf(stdout, "      default: %s\n", v.Default)
			}
		}
	}
	return exitOK
}

// newLogger writes logs to w in the configured level and format.
func newLogger(c config.Common, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.Level(c.LogLevel)}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
