// Package redact takes out of log lines and error texts what must not be
// in them: the secrets a configured URL may hold, most of a long value, and
// clients' addresses (unless the operator asks for them).
package redact

import "strings"

// Mask stands for what is taken out of a URL.
const Mask = "xxxxx"

// ferryOptions are the query options of ferry's own URL forms (tunnel,
// listener and target URLs): their values are ferry's settings, not a
// secret of someone else's site, and are kept, so that an error about one
// still shows it.
var ferryOptions = map[string]bool{"connect": true, "sni": true, "decoy": true, "proxy": true, "resolver": true}

// URL returns s with the secrets a URL may hold masked: the password of its
// user information (the whole user information when it has no password,
// for it is then a token), the value of every query option but ferry's
// own, and the fragment, e.g. https://user:xxxxx@host/path?k=xxxxx. It
// works on the text, so that a URL too malformed to parse, quoted by the
// error that refuses it, loses its secrets too; a comma-separated list is
// masked item by item, and text with neither "://" nor '?' is returned as
// it is.
func URL(s string) string {
	if !strings.Contains(s, "://") {
		if before, query, ok := strings.Cut(s, "?"); ok {
			// Not a URL, but options after a '?' all the same (a
			// target's ROUTE=HOST:PORT?proxy=v1): masked alike.
			return maskURL("://" + before + "?" + query)[3:]
		}
		return s
	}
	items := strings.Split(s, ",")
	for i, item := range items {
		items[i] = maskURL(item)
	}
	return strings.Join(items, ",")
}

func maskURL(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.WriteString(s[:i+3])
	rest := s[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	host := rest[:end]
	if at := strings.LastIndex(host, "@"); at >= 0 {
		if user, _, ok := strings.Cut(host[:at], ":"); ok {
			b.WriteString(user + ":" + Mask)
		} else {
			b.WriteString(Mask)
		}
		host = host[at:]
	}
	b.WriteString(host)
	rest = rest[end:]
	rest, fragment, hasFragment := strings.Cut(rest, "#")
	path, query, hasQuery := strings.Cut(rest, "?")
	b.WriteString(path)
	if hasQuery {
		b.WriteByte('?')
		for j, opt := range strings.Split(query, "&") {
			if j > 0 {
				b.WriteByte('&')
			}
			k, v, ok := strings.Cut(opt, "=")
			switch {
			case !ok && k != "":
				b.WriteString(Mask) // a bare value, e.g. ?TOKEN
			case !ok:
			case v == "" || ferryOptions[k]:
				b.WriteString(opt)
			default:
				b.WriteString(k + "=" + Mask)
			}
		}
	}
	if hasFragment {
		b.WriteByte('#')
		if fragment != "" {
			b.WriteString(Mask)
		}
	}
	return b.String()
}

// MaxValue is the length from which an error cuts a value it quotes: a
// long value in the wrong variable is more likely a key or a token than a
// typo.
const MaxValue = 64

// cutTo is how much of a long value is kept.
const cutTo = 32

// Cut returns s, or when it is MaxValue characters or more, its first
// cutTo characters and "…".
func Cut(s string) string {
	if r := []rune(s); len(r) >= MaxValue {
		return string(r[:cutTo]) + "…"
	}
	return s
}

// Value is a configured value as an error quotes it: its URL secrets masked
// (URL), and cut when long (Cut). It prints so with %s, %v and %q:
//
//	fmt.Errorf("%q is not a level", redact.Value(v))
type Value string

func (v Value) String() string { return Cut(URL(string(v))) }
