// Package config reads ferry's configuration from the environment.
//
// Every role has its own spec struct. Each field names its variable in an
// `envconfig` tag and carries `desc` (what it is), `form` (what a value looks
// like, quoted in errors) and `default` tags, and a number or duration may
// carry a `max` tag (its upper bound, checked by Load), so the struct is the
// one place where a variable, its help text and its error message are
// defined.
// ../shared/CONTRACT.md lists the names; they are kept as written there.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"ferry/internal/redact"
)

// Error is a configuration error. It names the variable and the form a value
// must have, and never quotes a secret.
type Error struct {
	Var  string // the environment variable, e.g. FERRY_EDGE_LISTEN
	Form string // the expected form, from the field's form tag
	Err  error
}

func (e *Error) Error() string {
	if e.Form == "" {
		return fmt.Sprintf("%s: %v", e.Var, e.Err)
	}
	return fmt.Sprintf("%s: %v (want %s)", e.Var, e.Err, e.Form)
}

func (e *Error) Unwrap() error { return e.Err }

// Common holds the settings every role shares.
type Common struct {
	Admin     Address   `envconfig:"FERRY_ADMIN" default:"127.0.0.1:8199" form:"HOST:PORT, or empty to disable" desc:"admin HTTP address serving /metrics, /healthz, /readyz and a stats page at /; it has no authentication, so an address that is not loopback needs FERRY_ADMIN_PUBLIC=true"`
	LogLevel  LogLevel  `envconfig:"FERRY_LOG_LEVEL" default:"info" form:"debug, info, warn or error" desc:"least severe log level written"`
	LogFormat LogFormat `envconfig:"FERRY_LOG_FORMAT" default:"text" form:"text or json" desc:"log line format"`
	Grace     Duration  `envconfig:"FERRY_GRACE" default:"30s" max:"1h" form:"a positive duration up to 1h, such as 30s or 2m" desc:"on SIGTERM or SIGINT, how long live connections may finish before they are closed"`
	// Bool rather than bool: envconfig's own parser would accept "1", "t"
	// and the like, and quote Go's error.
	LogClientIPs Bool        `envconfig:"FERRY_LOG_CLIENT_IPS" default:"false" form:"true or false" desc:"put clients' IP addresses in the (debug) log lines about them, strangers' refused at tunnel listeners among them, and leave them in error texts; by default no line holds one"`
	MemoryLimit  MemoryLimit `envconfig:"FERRY_MEMORY_LIMIT" form:"a size such as 512MiB or 1GiB, or off" desc:"soft memory limit of the process (Go's): the collector works harder near it and hands memory back after a burst (default: 75% of the cgroup's limit, else of the machine's memory; GOMEMLIMIT, if set, is kept)"`
	// The admin endpoint shows the share link and every counter to whoever
	// asks: listening beyond loopback is a choice to make in writing.
	AdminPublic  Bool    `envconfig:"FERRY_ADMIN_PUBLIC" default:"false" form:"true or false" desc:"allow FERRY_ADMIN on an address that is not loopback (all addresses, a pod's, a private network's): the admin endpoint has no authentication, so keep its port off the Internet"`
	AlertWebhook Webhook `envconfig:"FERRY_ALERT_WEBHOOK" form:"an https:// URL, or empty for none" desc:"gets a small JSON POST when an edge or standalone suspects its address is blocked (new clients stopped coming) and another when they return, and when an origin or standalone cannot reach WhatsApp on a route and another when it can again; its path and query are never logged, so they may hold the webhook's token"`
}

// Auth holds the secret shared by edges and origins.
type Auth struct {
	Secret Secret `envconfig:"FERRY_SECRET" form:"at least 32 bytes, not blank, no line break at the end, e.g. from: openssl rand -base64 33" desc:"shared secret of edges and origins (required)"`
}

// Clients holds the client-facing listeners of an edge or of standalone.
type Clients struct {
	Listen   Listeners `envconfig:"FERRY_EDGE_LISTEN" default:"tls://:443/chat,tcp://:80/chat80,tcp://:5222/chat,tcp://:587/media,tcp://:7777/media,proxy+tls://:8443/chat,proxy+tcp://:8080/chat80,proxy+tcp://:8222/chat" form:"comma-separated SCHEME://[HOST]:PORT/ROUTE[?decoy=off] with SCHEME tcp, tls, proxy+tcp or proxy+tls" desc:"client listeners; ROUTE names a target of the origin, and the route media passes TLS through by its server name; every connection not speaking WhatsApp gets the web site (FERRY_EDGE_DECOY), unless ?decoy=off relays all as they come"`
	TLSCert  string    `envconfig:"FERRY_EDGE_TLS_CERT" form:"path of a PEM certificate file" desc:"certificate for tls listeners, media ClientHellos not passed through, and wss and quic tunnel listeners (default: self-signed ECDSA P-256 with a random name, made at start; with FERRY_EDGE_ACME, until the CA's certificate is there; each wss or quic tunnel listener then gets a self-signed one of its own, with a key of a common kind)"`
	TLSKey   string    `envconfig:"FERRY_EDGE_TLS_KEY" form:"path of a PEM private key file" desc:"private key for FERRY_EDGE_TLS_CERT"`
	MaxConns Count     `envconfig:"FERRY_EDGE_MAX_CONNS" default:"27500" form:"a whole number from 1 to 10000000" desc:"concurrent client connections at most; more are closed at once"`
	// Off by default: behind carrier-grade NAT (Iran's mobile carriers use
	// it widely) thousands of phones share one address, and any fixed cap
	// refuses the phones after the cap's. The edge shares by need instead
	// once it nears FERRY_EDGE_MAX_CONNS (edge/limit.go).
	MaxConnsPerIP    Limit        `envconfig:"FERRY_EDGE_MAX_CONNS_PER_IP" default:"0" form:"a whole number; 0 for no cap" desc:"hard cap on concurrent client connections from one IPv4 address or IPv6 /64 (default: none, as carrier-grade NAT puts thousands of phones behind one address); without it, once the edge holds 80% of FERRY_EDGE_MAX_CONNS, a new connection from an address holding more than the mean per address is refused"`
	HandshakeTimeout Duration     `envconfig:"FERRY_EDGE_HANDSHAKE_TIMEOUT" default:"20s" max:"5m" form:"a positive duration up to 5m, such as 20s" desc:"how long a new client may take to send its PROXY header, finish TLS and send its first byte"`
	PublicHost       Hosts        `envconfig:"FERRY_EDGE_PUBLIC_HOST" form:"comma-separated host names or IP addresses" desc:"the names (or IP literals) phones use for this edge, the first one in the share link and QR code on the stats page; with FERRY_EDGE_ACME, the certificates' names (the first also for a ClientHello without a name)"`
	Decoy            Decoy        `envconfig:"FERRY_EDGE_DECOY" form:"empty, an http(s):// URL, or a readable directory other than a file system's root" desc:"the web site every visitor that does not speak WhatsApp sees on the client ports and on FERRY_EDGE_TUNNEL_LISTEN, answered as nginx answers: a built-in page made for this host, a site reverse-proxied, or files served (no listings, no dotfiles, nothing outside the directory)"`
	MediaNames       NamePatterns `envconfig:"FERRY_EDGE_MEDIA_NAMES" default:"*.whatsapp.net" form:"comma-separated server names, each NAME or *.SUFFIX" desc:"TLS server names that media listeners and tls listeners pass through to the route media; any other ClientHello is answered with the web site"`
	MediaAfterChat   Bool         `envconfig:"FERRY_EDGE_MEDIA_AFTER_CHAT" default:"false" form:"true or false" desc:"pass media through only for an address (IPv4, or IPv6 /64) that had a WhatsApp chat connection through this edge in the last 10 minutes; others get the web site. A scanner sending a media name then learns nothing, but phones whose address changes between connections (some carrier NATs) lose media"`
	ACME             ACME         `envconfig:"FERRY_EDGE_ACME" default:"off" form:"off, letsencrypt, or an https:// ACME directory URL" desc:"obtain and renew certificates for FERRY_EDGE_PUBLIC_HOST from a public CA (HTTP-01 on the port-80 listener, TLS-ALPN-01 on 443); the self-signed one serves until then"`
	ACMEDir          string       `envconfig:"FERRY_EDGE_ACME_DIR" default:"/var/lib/ferry/acme" form:"a directory path" desc:"where ACME certificates, keys and the account are kept"`
	ACMEEmail        string       `envconfig:"FERRY_EDGE_ACME_EMAIL" form:"an email address" desc:"the ACME account's contact, for the CA's expiry notices"`
	// A PROXY header is believed only from the load balancers in front of
	// the edge: anyone else could claim any address, to pass the per-address
	// cap or to lock another address out.
	ProxyFrom  Prefixes `envconfig:"FERRY_EDGE_PROXY_FROM" default:"127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7" form:"comma-separated CIDRs such as 10.0.0.0/8 or 203.0.113.7/32, or none" desc:"senders whose PROXY headers proxy+ listeners believe (default: loopback and private ranges); a connection from any other address is an ordinary client of a plain listener, its first bytes routed as they come (a PROXY header then gets the web site), counted against FERRY_EDGE_MAX_CONNS_PER_IP by its own address before anything is read"`
	ACMECARoot string   `envconfig:"FERRY_EDGE_ACME_CA_ROOT" form:"path of a PEM file" desc:"CA roots to trust, besides the system's, for the ACME directory's HTTPS (a private CA)"`
}

// Upstream holds what an origin or standalone may dial.
type Upstream struct {
	Targets       Targets       `envconfig:"FERRY_ORIGIN_TARGETS" default:"chat=g.whatsapp.net:5222|g-fallback.whatsapp.net:5222,chat80=g.whatsapp.net:80|g-fallback.whatsapp.net:80,media=*.whatsapp.net:443|whatsapp.net:443" form:"comma-separated ROUTE=ALT[|ALT...][?proxy=off|v1|v2], each ALT HOST:PORT or *.SUFFIX:PORT" desc:"the only destinations that will be dialled; a route's alternatives are tried in order. *.SUFFIX:PORT dials the client's TLS server name (a media connection's SNI) on PORT when it ends in .SUFFIX, and is skipped for a client without one; a name that no pattern of its route allows is refused, and nothing is dialled. ?proxy= sets the route's PROXY header, over FERRY_ORIGIN_PROXY_PROTOCOL"`
	ProxyProtocol ProxyProtocol `envconfig:"FERRY_ORIGIN_PROXY_PROTOCOL" default:"off" form:"off, v1 or v2" desc:"send a PROXY protocol header with the client's address to each route's target, as the official proxy does on chat; media routes (named media, or with a *.SUFFIX alternative) get none unless their ?proxy= asks, since WhatsApp's media servers take none. Edges send client addresses through the tunnel only when some route sends a PROXY header"`
}

// Edge is the configuration of `ferry edge`.
type Edge struct {
	Common
	Auth
	Clients
	Pool         Count           `envconfig:"FERRY_EDGE_POOL" default:"2" max:"64" form:"a whole number from 1 to 64" desc:"sessions kept to each origin; new clients go to the least busy one"`
	Origins      TunnelURLs      `envconfig:"FERRY_EDGE_ORIGINS" form:"comma-separated ws://HOST[:PORT]/PATH, wss://HOST[:PORT]/PATH or quic://HOST:PORT, with optional ?connect=IP:PORT&sni=NAME; or, listed last, dns://ZONE[?resolver=IP:PORT[,IP:PORT...]][&rate=QUERIES_PER_SECOND] (default: the resolvers of /etc/resolv.conf, 100 queries a second to each)" desc:"origins to tunnel to, in order of preference (this or FERRY_EDGE_TUNNEL_LISTEN is required); a dns:// one last is dialled only while none before it is up"`
	TunnelListen TunnelListeners `envconfig:"FERRY_EDGE_TUNNEL_LISTEN" form:"comma-separated ws://[HOST]:PORT/PATH, wss://[HOST]:PORT/PATH or quic://[HOST]:PORT" desc:"reverse mode: tunnel listeners that origins dial (their FERRY_ORIGIN_EDGES); clients' streams still go from edge to origin"`
}

// Origin is the configuration of `ferry origin`.
type Origin struct {
	Common
	Auth
	Upstream
	Listen  TunnelListeners `envconfig:"FERRY_ORIGIN_LISTEN" default:"ws://:8080/tunnel" form:"comma-separated ws://[HOST]:PORT/PATH, wss://[HOST]:PORT/PATH, quic://[HOST]:PORT or dns://[HOST]:PORT/ZONE, or empty for none" desc:"tunnel listeners that edges connect to; a dns:// one answers as ZONE's authoritative server"`
	TLSCert string          `envconfig:"FERRY_ORIGIN_TLS_CERT" form:"path of a PEM certificate file" desc:"certificate for wss and quic listeners (default: a self-signed one for each, made at start, with a random name and a key of a common kind: ECDSA P-256 or P-384, or RSA 2048)"`
	TLSKey  string          `envconfig:"FERRY_ORIGIN_TLS_KEY" form:"path of a PEM private key file" desc:"private key for FERRY_ORIGIN_TLS_CERT"`
	Decoy   Decoy           `envconfig:"FERRY_ORIGIN_DECOY" form:"empty, an http(s):// URL, or a readable directory other than a file system's root" desc:"what visitors without the secret see, answered as nginx answers: a built-in web page made for this host, a site reverse-proxied, or files served (no listings, no dotfiles, nothing outside the directory)"`
	Edges   TunnelURLs      `envconfig:"FERRY_ORIGIN_EDGES" form:"comma-separated ws://HOST[:PORT]/PATH, wss://HOST[:PORT]/PATH or quic://HOST:PORT, with optional ?connect=IP:PORT&sni=NAME" desc:"reverse mode: edges to dial (their FERRY_EDGE_TUNNEL_LISTEN), for edges that cannot dial out; they still open the streams"`
	Pool    Count           `envconfig:"FERRY_ORIGIN_POOL" default:"2" max:"64" form:"a whole number from 1 to 64" desc:"sessions kept to each edge of FERRY_ORIGIN_EDGES"`
}

// Standalone is the configuration of `ferry standalone`.
type Standalone struct {
	Common
	Clients
	Upstream
}

// Load fills spec (a *Edge, *Origin or *Standalone) from the environment and
// checks it. Every error it returns is an *Error.
func Load(spec any) error {
	if err := checkUnknown(os.Environ()); err != nil {
		return err
	}
	if err := envconfig.Process("", spec); err != nil {
		var perr *envconfig.ParseError
		if errors.As(err, &perr) {
			return &Error{Var: perr.KeyName, Form: formOf(spec, perr.KeyName), Err: perr.Err}
		}
		return &Error{Var: "environment", Err: err}
	}
	if err := checkMax(spec); err != nil {
		return err
	}
	switch s := spec.(type) {
	case *Edge:
		return s.check()
	case *Origin:
		return s.check()
	case *Standalone:
		return s.check()
	}
	return nil
}

func (e *Edge) check() error {
	if err := e.Common.check(); err != nil {
		return err
	}
	if err := e.Auth.check(); err != nil {
		return err
	}
	if len(e.Origins) == 0 && len(e.TunnelListen) == 0 {
		return &Error{Var: "FERRY_EDGE_ORIGINS", Form: formOf(e, "FERRY_EDGE_ORIGINS"), Err: errors.New("is required for an edge, unless origins dial it on FERRY_EDGE_TUNNEL_LISTEN")}
	}
	return e.Clients.check()
}

func (o *Origin) check() error {
	if err := o.Common.check(); err != nil {
		return err
	}
	if err := o.Auth.check(); err != nil {
		return err
	}
	if len(o.Listen) == 0 && len(o.Edges) == 0 {
		return &Error{Var: "FERRY_ORIGIN_LISTEN", Form: formOf(o, "FERRY_ORIGIN_LISTEN"), Err: errors.New("is empty, and FERRY_ORIGIN_EDGES too: an origin needs one of them")}
	}
	return checkKeyPair("FERRY_ORIGIN_TLS_CERT", o.TLSCert, "FERRY_ORIGIN_TLS_KEY", o.TLSKey)
}

func (s *Standalone) check() error {
	if err := s.Common.check(); err != nil {
		return err
	}
	for _, l := range s.Listen {
		if _, ok := s.Targets[l.Route]; !ok {
			return &Error{Var: "FERRY_EDGE_LISTEN", Err: fmt.Errorf("route %q of %s is not in FERRY_ORIGIN_TARGETS", redact.Value(l.Route), l)}
		}
	}
	return s.Clients.check()
}

// check refuses an admin endpoint beyond loopback unless FERRY_ADMIN_PUBLIC
// says so. An empty host is every address; a name other than localhost may
// resolve to anything, so it counts as public too.
func (c *Common) check() error {
	if c.Admin == "" || c.AdminPublic {
		return nil
	}
	host, _, _ := net.SplitHostPort(string(c.Admin))
	if a, err := netip.ParseAddr(host); err == nil && a.IsLoopback() || strings.EqualFold(host, "localhost") {
		return nil
	}
	where := host
	if host == "" {
		where = "every address"
	}
	return &Error{Var: "FERRY_ADMIN", Form: "a loopback HOST:PORT such as 127.0.0.1:8199, or FERRY_ADMIN_PUBLIC=true", Err: fmt.Errorf("%s listens on %s, beyond loopback, and the admin endpoint has no authentication: set FERRY_ADMIN_PUBLIC=true to allow it", c.Admin, where)}
}

// checkMax refuses a Count, Limit or Duration above its field's max tag.
func checkMax(spec any) error {
	var err error
	eachVar(spec, func(f reflect.StructField, v reflect.Value) {
		max, ok := f.Tag.Lookup("max")
		if !ok || err != nil {
			return
		}
		key := f.Tag.Get("envconfig")
		switch x := v.Interface().(type) {
		case Duration:
			m, perr := time.ParseDuration(max)
			if perr != nil {
				panic(fmt.Sprintf("config: %s: bad max tag %q", key, max))
			}
			if time.Duration(x) > m {
				err = &Error{Var: key, Form: f.Tag.Get("form"), Err: fmt.Errorf("%v is longer than %v", time.Duration(x), m)}
			}
		case Count, Limit:
			m, perr := strconv.Atoi(max)
			if perr != nil {
				panic(fmt.Sprintf("config: %s: bad max tag %q", key, max))
			}
			if n := v.Int(); n > int64(m) {
				err = &Error{Var: key, Form: f.Tag.Get("form"), Err: fmt.Errorf("%d is more than %d", n, m)}
			}
		default:
			panic(fmt.Sprintf("config: %s: a max tag on a %T", key, x))
		}
	})
	return err
}

func (a *Auth) check() error {
	if a.Secret == "" {
		return &Error{Var: "FERRY_SECRET", Form: formOf(a, "FERRY_SECRET"), Err: errors.New("is required")}
	}
	return nil
}

func (c *Clients) check() error {
	if c.ACME != "" {
		if len(c.PublicHost) == 0 {
			return &Error{Var: "FERRY_EDGE_PUBLIC_HOST", Form: formOf(c, "FERRY_EDGE_PUBLIC_HOST"), Err: errors.New("is required with FERRY_EDGE_ACME: the certificates are for its names")}
		}
		if c.TLSCert != "" {
			return &Error{Var: "FERRY_EDGE_TLS_CERT", Err: errors.New("and FERRY_EDGE_ACME are both set: choose one source of certificates")}
		}
		if c.ACMEDir == "" {
			return &Error{Var: "FERRY_EDGE_ACME_DIR", Form: formOf(c, "FERRY_EDGE_ACME_DIR"), Err: errors.New("is empty")}
		}
		if c.ACMECARoot != "" {
			if _, err := os.Stat(c.ACMECARoot); err != nil {
				return &Error{Var: "FERRY_EDGE_ACME_CA_ROOT", Form: formOf(c, "FERRY_EDGE_ACME_CA_ROOT"), Err: err}
			}
		}
	}
	return checkKeyPair("FERRY_EDGE_TLS_CERT", c.TLSCert, "FERRY_EDGE_TLS_KEY", c.TLSKey)
}

func checkKeyPair(certVar, cert, keyVar, key string) error {
	switch {
	case cert != "" && key == "":
		return &Error{Var: keyVar, Err: fmt.Errorf("is required when %s is set", certVar)}
	case cert == "" && key != "":
		return &Error{Var: certVar, Err: fmt.Errorf("is required when %s is set", keyVar)}
	}
	return nil
}

// Attrs returns spec's variables and their values, for the log line at
// start: the secret is redacted by its LogValue, and a value that prints
// itself (a URL among them: FERRY_EDGE_DECOY, FERRY_ORIGIN_DECOY,
// FERRY_EDGE_ACME) is logged as it prints, with the secrets a URL may hold
// masked (redact.URL).
func Attrs(spec any) []any {
	var attrs []any
	eachVar(spec, func(f reflect.StructField, v reflect.Value) {
		val := v.Interface()
		_, logs := val.(slog.LogValuer)
		if s, ok := val.(fmt.Stringer); ok && !logs {
			val = redact.URL(s.String())
		}
		attrs = append(attrs, slog.Any(f.Tag.Get("envconfig"), val))
	})
	return attrs
}

// eachVar calls fn with each variable's field of spec (a pointer to a
// struct), in the order they are declared, through embedded structs.
func eachVar(spec any, fn func(f reflect.StructField, v reflect.Value)) {
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if f.Anonymous {
				walk(v.Field(i))
				continue
			}
			fn(f, v.Field(i))
		}
	}
	walk(reflect.ValueOf(spec).Elem())
}

// Var describes one environment variable, for `ferry help`.
type Var struct {
	Key, Desc, Form, Default string
}

// Vars lists the variables of spec (a *Edge, *Origin or *Standalone) in the
// order they are declared.
func Vars(spec any) []Var {
	var vars []Var
	eachVar(spec, func(f reflect.StructField, _ reflect.Value) {
		vars = append(vars, Var{
			Key:     f.Tag.Get("envconfig"),
			Desc:    f.Tag.Get("desc"),
			Form:    f.Tag.Get("form"),
			Default: f.Tag.Get("default"),
		})
	})
	return vars
}

func formOf(spec any, key string) string {
	for _, v := range Vars(spec) {
		if v.Key == key {
			return v.Form
		}
	}
	return ""
}

// checkUnknown refuses FERRY_ variables that no role reads, so that a typo
// is not silently ignored. Any role's variables are allowed in any role: one
// environment file may serve an edge and an origin, and `ferry deploy
// -dns`'s may be exported in the shell a role runs in.
func checkUnknown(environ []string) error {
	known := map[string]bool{}
	for _, spec := range []any{&Edge{}, &Origin{}, &Standalone{}, &DNS{}} {
		for _, v := range Vars(spec) {
			known[v.Key] = true
		}
	}
	for _, kv := range environ {
		key, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(key, "FERRY_") && !known[key] {
			names := make([]string, 0, len(known))
			for k := range known {
				names = append(names, k)
			}
			sort.Strings(names)
			if near := Closest(key, names); near != "" {
				return &Error{Var: key, Err: fmt.Errorf("is not a ferry variable: did you mean %s?", near)}
			}
			return &Error{Var: key, Err: fmt.Errorf("is not a ferry variable (known: %s)", strings.Join(names, ", "))}
		}
	}
	return nil
}

// Closest is the name in names nearest to s by edit distance, when it is
// close enough to be a typo of it (at most a third of s's length, and at
// most 3 edits), else "". Ties go to the first in names.
func Closest(s string, names []string) string {
	best, bestD := "", min(3, len(s)/3)+1
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, in bytes: ferry's
// names are ASCII.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Duration is a time.Duration that must be positive.
type Duration time.Duration

func (d *Duration) Decode(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration", redact.Value(s))
	}
	if v <= 0 {
		return fmt.Errorf("%q is not positive", redact.Value(s))
	}
	*d = Duration(v)
	return nil
}
