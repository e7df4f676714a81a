package dnsupdate

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"ferry/config"
)

// The variables, one place for their names and forms; config/dns.go lists
// the same ones for `ferry help` (a test checks they agree).
const (
	VarServer    = "FERRY_DNS_SERVER"
	VarTransport = "FERRY_DNS_TRANSPORT"
	VarZone      = "FERRY_DNS_ZONE"
	VarTSIG      = "FERRY_DNS_TSIG"
	VarTSIGFile  = "FERRY_DNS_TSIG_FILE"

	VarCloudflareToken  = "FERRY_DNS_CLOUDFLARE_TOKEN"
	VarCloudflareZoneID = "FERRY_DNS_CLOUDFLARE_ZONE_ID"
	VarCloudflareAPI    = "FERRY_DNS_CLOUDFLARE_API"
)

const (
	formServer    = "HOST[:PORT] of the zone's primary server, e.g. 192.0.2.53 or [2001:db8::53]:5353 (port 53 if none)"
	formTransport = "tcp or udp"
	formZone      = "a zone name such as example.com, or empty to find it by an SOA query"
	formTSIG      = "NAME:ALGORITHM:BASE64SECRET, e.g. ferry-update:hmac-sha256:c2VjcmV0... (ALGORITHM hmac-sha256, hmac-sha512, ...)"
	formTSIGFile  = "path of a key file as tsig-keygen writes it: key \"NAME\" { algorithm ALG; secret \"BASE64\"; };"
	formCFToken   = "a Cloudflare API token with the Zone.DNS edit permission"
	formCFZoneID  = "a Cloudflare zone ID (32 hex digits), or empty to find the zone by name"
	formCFAPI     = "an http(s):// URL of Cloudflare's v4 API"
)

// VarError is a configuration error: it names the variable and the form a
// value must have, and never quotes a secret. It is config's own, so that
// ferry exits with status 2 for it as for any other bad variable.
type VarError = config.Error

var errMissing = errors.New("not set")

// parseServer reads FERRY_DNS_SERVER's form into HOST:PORT.
func parseServer(v string) (string, error) {
	if v == "" {
		return "", errMissing
	}
	host, port := v, "53"
	if h, p, err := net.SplitHostPort(v); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
		host = v[1 : len(v)-1]
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		if _, err := checkName(host); err != nil {
			return "", fmt.Errorf("host %q is neither an IP address nor a host name", host)
		}
	}
	return net.JoinHostPort(host, port), nil
}

// parseTransport reads FERRY_DNS_TRANSPORT: TCP by default, because an
// UPDATE and its TSIG may not fit a UDP datagram and TCP cannot be spoofed
// as easily.
func parseTransport(v string) (string, error) {
	switch strings.ToLower(v) {
	case "", "tcp":
		return "tcp", nil
	case "udp":
		return "udp", nil
	}
	return "", fmt.Errorf("%q is neither", v)
}

// parseZone reads FERRY_DNS_ZONE; empty stays empty (find it by SOA).
func parseZone(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	return checkName(v)
}

// checkName returns name fully qualified and in lower case, or why it is
// no host name.
func checkName(name string) (string, error) {
	if name == "" || name == "." {
		return "", errors.New("is empty")
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return "", errors.New("is not a domain name")
	}
	// IsDomainName takes any byte in a label (DNS can carry them); a name
	// to give a zone or a server is letters, digits, - and _ (as in
	// _acme-challenge) only.
	if strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) >= 0 {
		return "", errors.New("has characters other than letters, digits, -, _ and dots")
	}
	return dns.CanonicalName(name), nil
}

// parseAPI reads FERRY_DNS_CLOUDFLARE_API.
func parseAPI(v string) (string, error) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", errors.New("is not an http(s):// URL without a password")
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u.String(), nil
}
