//go:build !linux

package relay

import "net"

// tcpPeerEnded cannot tell elsewhere than on Linux: a blocked write then
// ends at the relay's idle timeout, as before.
func tcpPeerEnded(*net.TCPConn) error { return nil }
