package main

import (
	"ferry/dnstun/reliable"
	"ferry/tunnel"
)

// The dns transport's reliable stream (kcp-go) is wired in here, not in
// package tunnel: kcp-go runs goroutines of its own for the life of the
// process from the moment it is loaded, which only a binary that offers
// the transport should pay for (package reliable's comment).
func init() { tunnel.SetDNSStreams(tunnel.DNSStreamsOf(reliable.Dial, reliable.Listen)) }
