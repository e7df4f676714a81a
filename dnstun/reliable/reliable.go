// Package reliable runs kcp-go's reliable stream over dnstun's datagrams:
// retransmission, order and windows for the dns tunnel transport.
//
// It is a package of its own, which package tunnel does not import,
// because kcp-go starts goroutines of its own when it is loaded (its timer
// shards) and on first use (its send workers), for the life of the
// process: only a binary that wires the dns transport in
// (tunnel.SetDNSStreams) pays for them, and only its tests must tell its
// leak checks to ignore them (LeakedFunctions).
package reliable

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"

	"github.com/xtaci/kcp-go/v5"
)

// LeakedFunctions are the functions of kcp-go's process-wide goroutines, for
// goleak.IgnoreAnyFunction in the TestMain of a package whose tests use it.
var LeakedFunctions = []string{
	"github.com/xtaci/kcp-go/v5.(*TimedSched).run",
	"github.com/xtaci/kcp-go/v5.postProcessWorker",
}

// kcp's settings: no FEC (resolvers lose few packets, and each parity shard
// would cost a query), no encryption of its own (TLS runs over it, and
// dnstun's MAC authenticates each query), nodelay with a 20 ms clock, a
// resend after two duplicate acks, and no congestion window: dnstun's rate
// limit per resolver paces it. The windows, in packets, hold a few round
// trips at that rate.
const (
	interval = 20
	window   = 512
)

func tune(s *kcp.UDPSession, mtu int) {
	s.SetStreamMode(true)
	s.SetWriteDelay(false)
	s.SetNoDelay(1, interval, 2, 1)
	s.SetWindowSize(window, window)
	s.SetMtu(mtu)
	s.SetACKNoDelay(false)
}

// Dial starts a stream to raddr over pc, in datagrams of at most mtu
// bytes. Closing the stream leaves pc open.
func Dial(pc net.PacketConn, raddr net.Addr, mtu int) (net.Conn, error) {
	var conv uint32
	binary.Read(rand.Reader, binary.BigEndian, &conv)
	s, err := kcp.NewConn3(conv, raddr, nil, 0, 0, pc)
	if err != nil {
		return nil, fmt.Errorf("kcp: %w", err)
	}
	tune(s, mtu)
	return s, nil
}

// Listener accepts the streams that peers start over one PacketConn.
type Listener struct {
	l   *kcp.Listener
	mtu func(net.Addr) int
}

// Listen accepts streams over pc; mtu tells the largest datagram towards
// a peer. Closing the listener leaves pc open.
func Listen(pc net.PacketConn, mtu func(net.Addr) int) (*Listener, error) {
	l, err := kcp.ServeConn(nil, 0, 0, pc)
	if err != nil {
		return nil, fmt.Errorf("kcp: %w", err)
	}
	return &Listener{l: l, mtu: mtu}, nil
}

// Accept returns the next stream a peer started, until Close.
func (l *Listener) Accept() (net.Conn, error) {
	s, err := l.l.AcceptKCP()
	if err != nil {
		return nil, err
	}
	tune(s, l.mtu(s.RemoteAddr()))
	return s, nil
}

// Close stops Accept; streams accepted live on.
func (l *Listener) Close() error { return l.l.Close() }
