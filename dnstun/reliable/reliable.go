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
// dnstun's MAC authenticates each query), a 20 ms clock, a resend after
// two duplicate acks, and no congestion window (kcp's, loss based, halves
// at every drop of dnstun's short queues: measured, a chat round trip of
// 23 s instead of 3 under load). Not nodelay: its 30 ms minimum
// retransmission timeout, growing by half at each timeout, is shorter
// than the wait in dnstun's queue at the resolvers' rate limit, and kcp
// sent most datagrams twice (measured: 64 KiB up at 2.8 KB/s, against
// 4.6 with the 100 ms minimum that doubles). What paces it is its send
// window, sized by the caller for the rate its datagrams leave at.
const (
	interval  = 20
	rcvWindow = 1024
)

func tune(s *kcp.UDPSession, mtu, window int) {
	s.SetStreamMode(true)
	s.SetWriteDelay(false)
	s.SetNoDelay(0, interval, 2, 1)
	s.SetWindowSize(window, rcvWindow)
	s.SetMtu(mtu)
	s.SetACKNoDelay(false)
}

// Dial starts a stream to raddr over pc, in datagrams of at most mtu
// bytes, at most window of them unacknowledged. Closing the stream leaves
// pc open.
func Dial(pc net.PacketConn, raddr net.Addr, mtu, window int) (net.Conn, error) {
	var conv uint32
	binary.Read(rand.Reader, binary.BigEndian, &conv)
	s, err := kcp.NewConn3(conv, raddr, nil, 0, 0, pc)
	if err != nil {
		return nil, fmt.Errorf("kcp: %w", err)
	}
	tune(s, mtu, window)
	return s, nil
}

// Listener accepts the streams that peers start over one PacketConn.
type Listener struct {
	l   *kcp.Listener
	mtu func(net.Addr) int
}

// ServerWindow is the send window of accepted streams: 60 KiB of
// dnstun's 930-byte datagrams (answers of 1232 bytes), what dnstun's
// server queues for a session (its MaxQueued, 64 KiB).
const ServerWindow = 64

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
	tune(s, l.mtu(s.RemoteAddr()), ServerWindow)
	return s, nil
}

// Close stops Accept; streams accepted live on.
func (l *Listener) Close() error { return l.l.Close() }
