package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"ferry/internal/hostport"
	"ferry/internal/redact"
	"ferry/memlimit"
	"ferry/tunnel"
)

// Secret is the shared secret. It never prints itself.
type Secret string

// MinSecretLen is the shortest secret accepted, in bytes: 32 characters of
// a random base64 string carry about 190 bits.
const MinSecretLen = 32

func (s *Secret) Decode(v string) error {
	// The value is never quoted: even a wrong secret is a secret.
	switch {
	case strings.HasSuffix(v, "\n") || strings.HasSuffix(v, "\r"):
		// Most often the last newline of the file it was read from (a
		// Kubernetes Secret made --from-file, say); an edge and an origin
		// that read it differently would never agree.
		return errors.New("ends in a line break; remove it")
	case strings.TrimSpace(v) == "":
		return errors.New("is blank")
	case len(v) < MinSecretLen:
		return fmt.Errorf("is %d bytes long, shorter than %d", len(v), MinSecretLen)
	}
	*s = Secret(v)
	return nil
}

func (s Secret) String() string               { return "[redacted]" }
func (s Secret) GoString() string             { return "[redacted]" }
func (s Secret) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (s Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Address is a HOST:PORT to listen on, or empty for none.
type Address string

func (a *Address) Decode(v string) error {
	if v != "" {
		if err := hostport.Check(v, true); err != nil {
			return err
		}
	}
	*a = Address(v)
	return nil
}

// LogLevel is a slog level by name.
type LogLevel slog.Level

func (l *LogLevel) Decode(v string) error {
	levels := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
	lv, ok := levels[strings.ToLower(v)]
	if !ok {
		return fmt.Errorf("%q is not a level", redact.Value(v))
	}
	*l = LogLevel(lv)
	return nil
}

// LogFormat is "text" or "json".
type LogFormat string

func (f *LogFormat) Decode(v string) error {
	if v != "text" && v != "json" {
		return fmt.Errorf("%q is not a format", redact.Value(v))
	}
	*f = LogFormat(v)
	return nil
}

// Count is a positive whole number.
type Count int

func (c *Count) Decode(v string) error {
	n, err := wholeNumber(v, 1)
	if err == nil {
		*c = Count(n)
	}
	return err
}

// Limit is a whole number, zero for no limit.
type Limit int

func (l *Limit) Decode(v string) error {
	n, err := wholeNumber(v, 0)
	if err == nil {
		*l = Limit(n)
	}
	return err
}

// wholeNumber parses a whole number from min to 10,000,000.
func wholeNumber(v string, min int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > 10_000_000 {
		return 0, fmt.Errorf("%q is out of range", redact.Value(v))
	}
	return n, nil
}

// ProxyProtocol is a PROXY protocol version to send: 0 for none, 1 or 2.
type ProxyProtocol byte

func (p *ProxyProtocol) Decode(v string) error {
	versions := map[string]ProxyProtocol{"off": 0, "v1": 1, "v2": 2}
	pv, ok := versions[strings.ToLower(v)]
	if !ok {
		return fmt.Errorf("%q is not a PROXY protocol setting", redact.Value(v))
	}
	*p = pv
	return nil
}

// Listener is one client listener: SCHEME://[HOST]:PORT/ROUTE[?decoy=off].
type Listener struct {
	Scheme string // tcp, tls, proxy+tcp or proxy+tls
	Addr   string // [HOST]:PORT; an empty host means every address, IPv4 and IPv6
	Route  string
	// DecoyOff relays every connection as it comes, with no first-byte
	// routing to the web site (?decoy=off).
	DecoyOff bool
}

// Media reports whether the listener's route is the media route, whose
// TLS is passed through to WhatsApp's media servers.
func (l Listener) Media() bool { return l.Route == MediaRoute }

// MediaRoute is the route of media listeners, and where tls listeners pass
// media through to.
const MediaRoute = "media"

// TLS reports whether the listener terminates TLS.
func (l Listener) TLS() bool { return strings.HasSuffix(l.Scheme, "tls") }

// ProxyProtocol reports whether a PROXY protocol header precedes each connection.
func (l Listener) ProxyProtocol() bool { return strings.HasPrefix(l.Scheme, "proxy+") }

func (l Listener) String() string {
	s := l.Scheme + "://" + l.Addr + "/" + l.Route
	if l.DecoyOff {
		s += "?decoy=off"
	}
	return s
}

// ParseListener parses one SCHEME://[HOST]:PORT/ROUTE[?decoy=off].
func ParseListener(s string) (Listener, error) {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.User != nil || u.Fragment != "" {
		return Listener{}, fmt.Errorf("%q is not a listener URL", redact.Value(s))
	}
	decoyOff := false
	switch u.RawQuery {
	case "":
	case "decoy=off":
		decoyOff = true
	default:
		return Listener{}, fmt.Errorf("%q: unknown options (known: decoy=off)", redact.Value(s))
	}
	switch u.Scheme {
	case "tcp", "tls", "proxy+tcp", "proxy+tls":
	default:
		return Listener{}, fmt.Errorf("%q: scheme %q is not tcp, tls, proxy+tcp or proxy+tls", redact.Value(s), redact.Value(u.Scheme))
	}
	if err := hostport.Check(u.Host, true); err != nil {
		return Listener{}, fmt.Errorf("%q: %w", redact.Value(s), err)
	}
	route := strings.TrimPrefix(u.Path, "/")
	if err := checkRoute(route); err != nil {
		return Listener{}, fmt.Errorf("%q: %w", redact.Value(s), err)
	}
	return Listener{Scheme: u.Scheme, Addr: u.Host, Route: route, DecoyOff: decoyOff}, nil
}

// Listeners is a comma-separated list of Listener.
type Listeners []Listener

func (ls *Listeners) Decode(v string) error {
	var out Listeners
	seen := map[string]bool{}
	for _, part := range splitList(v) {
		l, err := ParseListener(part)
		if err != nil {
			return err
		}
		if seen[l.Addr] {
			return fmt.Errorf("%s is listed twice", l.Addr)
		}
		seen[l.Addr] = true
		out = append(out, l)
	}
	if len(out) == 0 {
		return errors.New("no listener given")
	}
	*ls = out
	return nil
}

// TunnelURLs is a comma-separated list of tunnels to dial, in order of
// preference.
type TunnelURLs []tunnel.URL

func (ts *TunnelURLs) Decode(v string) error {
	var out TunnelURLs
	seen := map[string]bool{}
	for _, part := range splitList(v) {
		t, err := tunnel.ParseURL(part)
		if err != nil {
			return err
		}
		// Compared as parsed, so ws://o.example/t and ws://o.example:80/t
		// are one URL; another connect= or sni= makes another one.
		if seen[t.String()] {
			return fmt.Errorf("%s is listed twice", t)
		}
		seen[t.String()] = true
		out = append(out, t)
	}
	*ts = out
	return nil
}

// TunnelListeners is a comma-separated list of tunnel listeners; it may be
// empty.
type TunnelListeners []tunnel.URL

func (ts *TunnelListeners) Decode(v string) error {
	var out TunnelListeners
	seen := map[string]bool{}
	for _, part := range splitList(v) {
		t, err := tunnel.ParseListenURL(part)
		if err != nil {
			return err
		}
		// QUIC and DNS listen on UDP, the others on TCP: one port may
		// serve both.
		key := t.Host
		if t.Scheme == "quic" || t.Scheme == "dns" {
			key = "udp " + key
		}
		if seen[key] {
			return fmt.Errorf("%s is listed twice", t.Host)
		}
		seen[key] = true
		out = append(out, t)
	}
	*ts = out
	return nil
}

// Decoy is what the origin shows visitors without the secret: the built-in
// page when both fields are empty, else a site to reverse-proxy, else a
// directory to serve.
type Decoy struct {
	URL *url.URL
	Dir string
}

func (d *Decoy) Decode(v string) error {
	switch {
	case v == "":
		*d = Decoy{}
	case strings.HasPrefix(v, "http://") || strings.HasPrefix(v, "https://"):
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			return fmt.Errorf("%q is not a URL", redact.Value(v))
		}
		*d = Decoy{URL: u}
	default:
		if err := decoyDir(v); err != nil {
			return err
		}
		*d = Decoy{Dir: v}
	}
	return nil
}

// decoyDir checks a decoy directory: one that exists and can be listed,
// and is not the root of a file system (through symlinks too), which would
// serve every file of the host to anyone.
func decoyDir(v string) error {
	// Not the *PathError itself: it would quote v in full.
	bare := func(err error) error {
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
			return pe.Err
		}
		return err
	}
	fi, err := os.Stat(v)
	if err != nil {
		return fmt.Errorf("%q: %w", redact.Value(v), bare(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("%q is not a directory", redact.Value(v))
	}
	real, err := filepath.EvalSymlinks(v)
	if err == nil {
		real, err = filepath.Abs(real)
	}
	if err != nil {
		return fmt.Errorf("%q: %w", redact.Value(v), bare(err))
	}
	if filepath.Dir(real) == real {
		return fmt.Errorf("%q is the root of the file system: every file of the host would be served", redact.Value(v))
	}
	f, err := os.Open(real)
	if err == nil {
		_, err = f.Readdirnames(1)
		f.Close()
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("%q cannot be read: %w", redact.Value(v), bare(err))
	}
	return nil
}

// splitList splits a comma-separated list, dropping blanks around items.
func splitList(v string) []string {
	var out []string
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// checkRoute allows short names of letters, digits, '.', '_' and '-'; they
// travel in every stream header.
func checkRoute(r string) error {
	if r == "" || len(r) > tunnel.MaxRouteLen {
		return fmt.Errorf("route %q must be 1 to %d characters", redact.Value(r), tunnel.MaxRouteLen)
	}
	for _, c := range r {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("route %q may hold only letters, digits, '.', '_' and '-'", redact.Value(r))
		}
	}
	return nil
}

// Hosts is a comma-separated list of host names and IP literals.
type Hosts []string

func (h *Hosts) Decode(v string) error {
	var out Hosts
	for _, part := range splitList(v) {
		if strings.ContainsAny(part, ":/ ") && net.ParseIP(part) == nil {
			return fmt.Errorf("%q is not a host name or IP address", redact.Value(part))
		}
		if ip := net.ParseIP(part); ip != nil {
			part = ip.String()
		} else if !isDNSName(part) {
			return fmt.Errorf("%q is not a host name or IP address", redact.Value(part))
		}
		part = strings.ToLower(part)
		if slices.Contains(out, part) {
			return fmt.Errorf("%s is listed twice", part)
		}
		out = append(out, part)
	}
	*h = out
	return nil
}

func (h Hosts) String() string { return strings.Join(h, ",") }

// isDNSName reports whether s is a host name: dot-separated labels of
// letters, digits and '-', not starting or ending with '-'.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// NamePatterns is a comma-separated list of TLS server names, each a name
// or *.SUFFIX (see MatchName).
type NamePatterns []string

func (n *NamePatterns) Decode(v string) error {
	var out NamePatterns
	for _, part := range splitList(v) {
		// A ClientHello's server name has no final dot, so a pattern
		// with one would match nothing.
		if !isDNSName(strings.TrimPrefix(part, "*.")) || strings.HasSuffix(part, ".") {
			return fmt.Errorf("%q is neither a name nor *.SUFFIX", redact.Value(part))
		}
		out = append(out, strings.ToLower(part))
	}
	*n = out
	return nil
}

func (n NamePatterns) String() string { return strings.Join(n, ",") }

// ACME is off, Let's Encrypt, or an ACME directory URL.
type ACME string

// LetsEncrypt is the ACME setting for Let's Encrypt's production CA.
const LetsEncrypt = "letsencrypt"

func (a *ACME) Decode(v string) error {
	switch {
	case v == "off" || v == "":
		*a = ""
	case v == LetsEncrypt:
		*a = LetsEncrypt
	case strings.HasPrefix(v, "https://"):
		u, err := url.Parse(v)
		if err != nil || u.Host == "" || u.User != nil {
			return fmt.Errorf("%q is not a directory URL", redact.Value(v))
		}
		*a = ACME(v)
	default:
		// ACME (RFC 8555) runs over HTTPS only.
		return fmt.Errorf("%q is not off, letsencrypt or an https:// ACME directory URL", redact.Value(v))
	}
	return nil
}

func (a ACME) String() string {
	if a == "" {
		return "off"
	}
	return string(a)
}

// MemoryLimit is FERRY_MEMORY_LIMIT: a size, off, or empty for the
// default (a share of the cgroup's or the machine's memory).
type MemoryLimit memlimit.Limit

// minMemoryLimit is the least limit accepted: below it the collector
// would run all the time.
const minMemoryLimit = 32 << 20

func (m *MemoryLimit) Decode(v string) error {
	switch v {
	case "":
		*m = MemoryLimit{}
		return nil
	case "off":
		*m = MemoryLimit{Off: true}
		return nil
	}
	n, err := memlimit.ParseSize(v)
	if err != nil {
		return err
	}
	if n < minMemoryLimit {
		return fmt.Errorf("%q is less than 32MiB", redact.Value(v))
	}
	*m = MemoryLimit{Bytes: n}
	return nil
}

func (m MemoryLimit) String() string {
	switch {
	case m.Off:
		return "off"
	case m.Bytes > 0:
		return fmt.Sprintf("%dMiB", m.Bytes>>20)
	}
	return "default"
}

// Bool is true or false, nothing else.
type Bool bool

func (b *Bool) Decode(v string) error {
	switch v {
	case "true":
		*b = true
	case "false":
		*b = false
	default:
		return fmt.Errorf("%q is neither true nor false", redact.Value(v))
	}
	return nil
}

// The String methods below make the log line at start read as the
// environment does.

func (l LogLevel) String() string { return strings.ToLower(slog.Level(l).String()) }

func (p ProxyProtocol) String() string {
	if p == 0 {
		return "off"
	}
	return fmt.Sprintf("v%d", p)
}

func (d Decoy) String() string {
	switch {
	case d.URL != nil:
		return d.URL.String()
	case d.Dir != "":
		return d.Dir
	}
	return "built-in page"
}

func (d Duration) String() string { return time.Duration(d).String() }

// Prefixes is a comma-separated list of CIDRs; "none" is the empty list.
type Prefixes []netip.Prefix

func (ps *Prefixes) Decode(v string) error {
	var out Prefixes
	if strings.TrimSpace(v) == "none" {
		*ps = Prefixes{}
		return nil
	}
	for _, part := range splitList(v) {
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8", redact.Value(part))
		}
		if p != p.Masked() {
			return fmt.Errorf("%s has bits set beyond its /%d (%s?)", p, p.Bits(), p.Masked())
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return errors.New(`is empty: write none to believe no sender`)
	}
	*ps = out
	return nil
}

func (ps Prefixes) String() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// Webhook is FERRY_ALERT_WEBHOOK: an https:// URL, or nil for none. Only
// HTTPS: the POST tells whoever reads it that this host is a proxy, and
// many webhooks' URLs are their only credential.
type Webhook struct{ URL *url.URL }

func (w *Webhook) Decode(v string) error {
	if v == "" {
		*w = Webhook{}
		return nil
	}
	// The errors never quote v: its path or query may be the token.
	u, err := url.Parse(v)
	switch {
	case err != nil || u.Scheme == "" || u.Opaque != "":
		return errors.New("is not a URL")
	case u.Scheme != "https":
		return fmt.Errorf("has scheme %s, not https", redact.Value(u.Scheme))
	case u.Hostname() == "":
		return errors.New("has no host")
	case u.Fragment != "":
		return errors.New("has a #fragment, which is never sent")
	}
	*w = Webhook{URL: u}
	return nil
}

// String shows the scheme and host only: a webhook's path (Slack's,
// Discord's) or query is often its secret, which redact.URL would keep.
func (w Webhook) String() string {
	if w.URL == nil {
		return ""
	}
	s := "https://" + w.URL.Host
	if w.URL.User != nil {
		s = "https://" + redact.Mask + "@" + w.URL.Host
	}
	if w.URL.Path != "" || w.URL.RawQuery != "" {
		s += "/" + redact.Mask
	}
	return s
}

func (w Webhook) LogValue() slog.Value { return slog.StringValue(w.String()) }
