package edge

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/pires/go-proxyproto"
)

// A PROXY header says which address a client has, and whoever sends it can
// write any address there: a stranger could pass the per-address cap by
// claiming other addresses, or lock an address out by claiming it many
// times. A proxy+ listener therefore reads a header only from a sender in
// Server.ProxyFrom (the load balancers in front of the edge). Any other
// sender is an ordinary client of a plain listener: its first bytes are
// routed as they come, so a PROXY header from it is bytes that are not
// WhatsApp's, and get the web site. This is go-proxyproto's SKIP on a
// Listener (the raw connection, unread), chosen by its PolicyFromRanges.
//
// Admission goes with it (Server.accept): an untrusted sender is counted
// against MaxConnsPerIP by its TCP address before anything is read; a
// trusted one by the client address of its header, once read. A trusted
// sender is not counted itself: it carries every client of the edge.

// DefaultProxyFrom are the senders whose PROXY headers are believed when
// Server.ProxyFrom is nil: loopback and the private ranges (RFC 1918, RFC
// 4193), where a load balancer in front of the edge is found.
var DefaultProxyFrom = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
}

// trustPolicy is REQUIRE for a sender in from (nil: DefaultProxyFrom), and
// SKIP for any other.
func trustPolicy(from []netip.Prefix) (proxyproto.ConnPolicyFunc, error) {
	if from == nil {
		from = DefaultProxyFrom
	}
	ranges := make([]string, len(from))
	for i, p := range from {
		ranges[i] = p.String()
	}
	policy, err := proxyproto.PolicyFromRanges(ranges, proxyproto.REQUIRE, proxyproto.SKIP)
	if err != nil {
		return nil, fmt.Errorf("edge: ProxyFrom: %w", err)
	}
	return policy, nil
}

// trusts reports whether c's sender may send a PROXY header. A sender whose
// address cannot be told is not trusted.
func (s *Server) trusts(c net.Conn) bool {
	p, err := s.trust(proxyproto.ConnPolicyOptions{Upstream: c.RemoteAddr(), Downstream: c.LocalAddr()})
	return err == nil && p == proxyproto.REQUIRE
}
