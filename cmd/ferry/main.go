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
	"slices"
	"strings"
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
                      (-chat 443/tls,80,5222 -media 587 -timeout 10s -standalone)
  ferry link [HOST]   print the wa.me share link of the edge at HOST (default FERRY_EDGE_PUBLIC_HOST), and its QR code
  ferry deploy edge|origin [-i KEY] [-env FILE] [-binary FILE] [-dns PROVIDER] [-replace OLDHOST] USER@HOST[:PORT]
                      install or upgrade ferry on a host over SSH (systemd), check it, print the share link
  ferry healthcheck   ask this machine's ferry (at FERRY_ADMIN) whether it works; -ready: whether it is ready
  ferry version       print the version
  ferry help [COMMAND]  what COMMAND does, its flags, and for a role its environment variables
                      with forms and defaults (edge, origin, standalone, or deploy for -dns)

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

	cmd, rest := args[0], args[1:]
	// "ferry link -h" is a question, not a host called "-h": every command
	// answers -h and --help with its help, before it parses anything.
	if _, known := commandHelp[cmd]; known && len(rest) > 0 && isHelpFlag(rest[0]) {
		return help([]string{cmd}, stdout, stderr)
	}
	var err error
	switch cmd {
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
		if near := config.Closest(cmd, commandNames()); near != "" {
			fmt.Fprintf(stderr, "ferry: unknown command %q: did you mean %q?\n\n%s", cmd, near, usage)
			return exitConfig
		}
		fmt.Fprintf(stderr, "ferry: unknown command %q\n\n%s", cmd, usage)
		return exitConfig
	}
	var cerr *config.Error
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &cerr) && strings.HasPrefix(cerr.Var, "ferry "):
		// Bad arguments, not bad configuration: the commands name
		// themselves as the "variable" (ferry check, ferry deploy).
		fmt.Fprintf(stderr, "%s: %v\n\n%s", cerr.Var, cerr.Err, commandHelp[cmd])
		return exitConfig
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

// help prints the usage text, or one command's help: its usage line and
// flags and, for a role, its environment variables.
func help(args []string, stdout, stderr io.Writer) int {
	roles := map[string]any{"edge": &config.Edge{}, "origin": &config.Origin{}, "standalone": &config.Standalone{}, "deploy": &config.DNS{}}
	order := []string{"edge", "origin", "standalone", "deploy"}
	if len(args) > 0 {
		text, ok := commandHelp[args[0]]
		if !ok {
			fmt.Fprintf(stderr, "ferry help: unknown command %q: want one of %s\n", args[0], strings.Join(commandNames(), ", "))
			return exitConfig
		}
		fmt.Fprint(stdout, text)
		if _, ok := roles[args[0]]; !ok {
			return exitOK
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

func isHelpFlag(s string) bool { return s == "-h" || s == "-help" || s == "--help" }

// commandNames are the commands, sorted: for "did you mean" and help's
// error.
func commandNames() []string {
	names := make([]string, 0, len(commandHelp))
	for name := range commandHelp {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// commandHelp is each command's help: "usage:", the form, what it does,
// its flags. A usage error prints it after the error.
var commandHelp = map[string]string{
	"edge": `usage: ferry edge

Runs an edge: client listeners on the WhatsApp app's ports, each connection
carried as one stream of a tunnel to an origin. No flags: configured by the
FERRY_ variables below. Exit status 2 names a variable that is wrong.
`,
	"origin": `usage: ferry origin

Runs an origin: accepts tunnels from edges that know FERRY_SECRET and dials
only the targets of FERRY_ORIGIN_TARGETS. No flags: configured by the FERRY_
variables below.
`,
	"standalone": `usage: ferry standalone

Client listeners that dial WhatsApp directly, no tunnel: the official
proxy's job. Runs with no configuration at all; no flags.
`,
	"check": "usage: " + checkForm + `

Tests the proxy at HOST from outside as the WhatsApp app would, all ports at
once; exit 0 only if chat works on some port, 1 if not.

flags:
  -chat PORTS      chat ports: PORT, or PORT/tls where the proxy ends TLS (default 443/tls,80,5222)
  -media PORTS     media ports (default 587)
  -timeout D       limit of each step on each port, a duration (default 10s)
  -standalone      HOST is a standalone (no tunnel): failures then blame only WhatsApp out of its reach

A port that waits for a PROXY protocol header (proxy+ listeners, from an
address in their FERRY_EDGE_PROXY_FROM) is asked again with one, and said to be
one: the app cannot use it directly.
`,
	"link": "usage: " + linkForm + `

Prints the wa.me share link of the edge at HOST (a name, an IPv4 address,
or an IPv6 address bare or in brackets) and its QR code. With no HOST, the
first of FERRY_EDGE_PUBLIC_HOST. The ports are FERRY_EDGE_LISTEN's. The QR
code is in colour on a terminal, in plain block characters otherwise.

flags:
  -h, --help       this help
`,
	"deploy": "usage: " + deployForm + `

Installs or upgrades an edge or origin on a host over SSH (a systemd unit
and an environment file), checks it, and prints the share link.

flags:
  -i KEY           SSH private key file (default: ssh-agent's keys)
  -env FILE        environment file of the role (KEY=VALUE lines); FERRY_ variables set here win over it
  -binary FILE     ferry binary for the host: a release .tar.gz or a bare binary (default: this one)
  -dns PROVIDER    point FERRY_EDGE_PUBLIC_HOST's records at the host once it passes: rfc2136 or cloudflare
  -replace OLDHOST after the new edge passes, drain and stop ferry on this USER@HOST[:PORT]
`,
	"healthcheck": `usage: ferry healthcheck [-ready]

Asks this machine's ferry, at FERRY_ADMIN, whether it works (/healthz);
exit 0 if so, 1 if not.

flags:
  -ready           ask whether it is ready (/readyz) instead
`,
	"version": `usage: ferry version

Prints the version, the commit, its date, and the Go and platform it was built with.
`,
	"help": `usage: ferry help [COMMAND]

Lists the commands, and every role's environment variables with forms and
defaults; with COMMAND, that command's help only. COMMAND is one of edge,
origin, standalone, check, link, deploy, healthcheck, version, help.
`,
}

// newLogger writes logs to w in the configured level and format.
func newLogger(c config.Common, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.Level(c.LogLevel)}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
