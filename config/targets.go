package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Targets maps each route to its alternatives, HOST:PORT each, in the order
// they are tried.
type Targets map[string][]string

// ParseTargets parses ROUTE=HOST:PORT[|HOST:PORT...],...
func ParseTargets(v string) (Targets, error) {
	out := Targets{}
	for _, part := range splitList(v) {
		route, alts, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%q has no =", part)
		}
		if err := checkRoute(route); err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		if _, dup := out[route]; dup {
			return nil, fmt.Errorf("route %q is listed twice", route)
		}
		for _, alt := range strings.Split(alts, "|") {
			if err := checkHostPort(alt, false); err != nil {
				return nil, fmt.Errorf("%q: %w", part, err)
			}
			out[route] = append(out[route], alt)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no target given")
	}
	return out, nil
}

func (t *Targets) Decode(v string) error {
	out, err := ParseTargets(v)
	if err != nil {
		return err
	}
	*t = out
	return nil
}

func (t Targets) String() string {
	routes := make([]string, 0, len(t))
	for r, alts := range t {
		routes = append(routes, r+"="+strings.Join(alts, "|"))
	}
	sort.Strings(routes)
	return strings.Join(routes, ",")
}
