// Package hostport checks the HOST:PORT forms of ferry's configuration, so
// that the variables config reads and the tunnel URLs package tunnel parses
// accept the same addresses and say the same when they refuse one.
package hostport

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"ferry/internal/redact"
)

// Check checks HOST:PORT; emptyHost allows ":PORT", for listeners.
func Check(hp string, emptyHost bool) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT", redact.Value(hp))
	}
	if host == "" && !emptyHost {
		return fmt.Errorf("%q has no host", redact.Value(hp))
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q: bad host", redact.Value(hp))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port must be 1 to 65535", redact.Value(hp))
	}
	return nil
}
