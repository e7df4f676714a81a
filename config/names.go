package config

import "strings"

// MatchName reports whether the TLS server name name is allowed by pattern:
// "*.SUFFIX" allows every name that ends in ".SUFFIX" (one label or more
// before it, never SUFFIX itself), and any other pattern allows exactly that
// name. Both compare without regard to case, as DNS does. The edge's media
// allowlist and the origin's "*.SUFFIX:PORT" targets use this one rule, so
// that what the edge passes through the origin also dials.
func MatchName(pattern, name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
		return len(name) > len(suffix)+1 && name[len(name)-len(suffix)-1] == '.' &&
			strings.EqualFold(name[len(name)-len(suffix):], suffix)
	}
	return strings.EqualFold(pattern, name)
}
