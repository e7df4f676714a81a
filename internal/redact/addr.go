package redact

import (
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strings"
)

// Client stands for a client's address taken out of a text.
const Client = "client"

// Addr returns text with every mention of client's IP address, with its
// port when one follows, replaced by Client. Network errors name both ends
// of a connection, so an error about a client's connection names the
// client; the other addresses in the text (ferry's own, a target's) stay.
// With an invalid client, every address is taken out (Addrs).
func Addr(text string, client netip.Addr) string {
	if !client.IsValid() {
		return Addrs(text)
	}
	forms := []string{client.String()}
	if u := client.Unmap(); u != client {
		forms = append(forms, u.String())
	}
	for _, ip := range forms {
		text = replaceIP(text, ip)
	}
	return text
}

// replaceIP replaces ip (and its brackets and port) wherever it stands
// alone in text: 10.0.0.1 is not taken out of 10.0.0.12.
func replaceIP(text, ip string) string {
	var b strings.Builder
	for {
		i := strings.Index(text, ip)
		if i < 0 {
			b.WriteString(text)
			return b.String()
		}
		j := i + len(ip)
		if i > 0 && ipChar(text[i-1]) || j < len(text) && follows(ip, text[j]) {
			b.WriteString(text[:j])
			text = text[j:]
			continue
		}
		if i > 0 && text[i-1] == '[' && j < len(text) && text[j] == ']' {
			i--
			j++
		}
		if j < len(text) && text[j] == ':' {
			k := j + 1
			for k < len(text) && text[k] >= '0' && text[k] <= '9' {
				k++
			}
			if k > j+1 {
				j = k
			}
		}
		b.WriteString(text[:i])
		b.WriteString(Client)
		text = text[j:]
	}
}

// follows reports whether c, after ip in a text, continues an address
// (10.0.0.12 after 10.0.0.1): a port's colon does not after IPv4, and a
// period may end a sentence.
func follows(ip string, c byte) bool {
	if strings.Contains(ip, ":") {
		return ipChar(c)
	}
	return ipChar(c) && c != '.' && c != ':'
}

// ipChar reports whether c may be part of an IP address's text.
func ipChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '.' || c == ':'
}

// addrs matches IPv4 addresses and bracketed IPv6 ones, with a port or not.
var addrs = regexp.MustCompile(`\[[0-9A-Fa-f:.%]+\](:[0-9]+)?|\b[0-9]{1,3}(\.[0-9]{1,3}){3}(:[0-9]+)?\b`)

// Addrs returns text with every IP address in it replaced by Client: for
// a text in which every address may be a client's, such as net/http's
// server errors ("TLS handshake error from ADDR").
func Addrs(text string) string {
	return addrs.ReplaceAllString(text, Client)
}

// Err is err for a log line about a client's connection: its text with
// the addresses of clients taken out (Addr), unless keep
// (FERRY_LOG_CLIENT_IPS). clients are the client's address, and the peer
// it came through when that differs (a balancer that sent a PROXY header,
// as likely the client itself as not); with none valid, every address is
// taken out.
func Err(err error, keep bool, clients ...netip.Addr) slog.Attr {
	if keep || err == nil {
		return slog.Any("err", err)
	}
	text, any := err.Error(), false
	for _, c := range clients {
		if c.IsValid() {
			text, any = Addr(text, c), true
		}
	}
	if !any {
		text = Addrs(text)
	}
	return slog.String("err", text)
}

// AddrOf is the IP address of a net.Addr (a TCP or UDP one), or the zero
// value when it has none.
func AddrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr()
	case *net.UDPAddr:
		return a.AddrPort().Addr()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}
