package tunnel

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Stream header, the first bytes the edge writes on every stream:
//
//	+---------+-------+-----------+-----------------+--------------------------+
//	| version | flags | route len | route           | client address           |
//	| 1 byte  | 1     | 1, 1..64  | route len bytes | 18 bytes, if FlagAddress |
//	+---------+-------+-----------+-----------------+--------------------------+
//
// version is 1. The route is a name of the origin's FERRY_ORIGIN_TARGETS. The
// client address, present only when the operator asked for it, is the
// client's IP as 16 bytes (IPv4 as an IPv4-mapped IPv6 address) and its port
// as 2 bytes, both big-endian. Unknown flags are refused, so that a newer
// edge fails loudly against an older origin.
//
// The origin answers with one Reply byte before any byte of the target.
// After a Reply other than ReplyOK it closes the stream.

// Version is the stream header version this build speaks.
const Version = 1

// FlagAddress marks a header that carries the client's address.
const FlagAddress = 1 << 0

// MaxRouteLen is the longest route name a header carries.
const MaxRouteLen = 64

// Header opens a stream.
type Header struct {
	Route string
	// ServerName is the TLS server name of a client whose TLS the edge
	// passes through (media), for a route that dials it; empty otherwise.
	ServerName string
	Client     netip.AddrPort // the zero value when the address is not sent
}

// ErrBadHeader is returned for a header that does not parse.
var ErrBadHeader = errors.New("bad stream header")

// AppendBinary appends the encoded header to b.
func (h Header) AppendBinary(b []byte) ([]byte, error) {
	if len(h.Route) == 0 || len(h.Route) > MaxRouteLen {
		return b, fmt.Errorf("%w: route of %d bytes", ErrBadHeader, len(h.Route))
	}
	var flags byte
	if h.Client.IsValid() {
		flags |= FlagAddress
	}
	b = append(b, Version, flags, byte(len(h.Route)))
	b = append(b, h.Route...)
	if h.Client.IsValid() {
		ip := h.Client.Addr().As16()
		b = append(b, ip[:]...)
		b = binary.BigEndian.AppendUint16(b, h.Client.Port())
	}
	return b, nil
}

// ReadHeader reads one header from r, reading no byte past it.
func ReadHeader(r io.Reader) (Header, error) {
	var buf [3 + MaxRouteLen + 18]byte
	if _, err := io.ReadFull(r, buf[:3]); err != nil {
		return Header{}, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	version, flags, n := buf[0], buf[1], int(buf[2])
	if version != Version {
		return Header{}, fmt.Errorf("%w: version %d", ErrBadHeader, version)
	}
	if flags&^FlagAddress != 0 {
		return Header{}, fmt.Errorf("%w: flags %#x", ErrBadHeader, flags)
	}
	if n == 0 || n > MaxRouteLen {
		return Header{}, fmt.Errorf("%w: route of %d bytes", ErrBadHeader, n)
	}
	rest := n
	if flags&FlagAddress != 0 {
		rest += 18
	}
	if _, err := io.ReadFull(r, buf[3:3+rest]); err != nil {
		return Header{}, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	h := Header{Route: string(buf[3 : 3+n])}
	if flags&FlagAddress != 0 {
		a := buf[3+n:]
		ip := netip.AddrFrom16([16]byte(a[:16])).Unmap()
		h.Client = netip.AddrPortFrom(ip, binary.BigEndian.Uint16(a[16:18]))
	}
	return h, nil
}

// Reply is the origin's answer to a header.
type Reply byte

const (
	ReplyOK           Reply = 0 // the target is connected; its bytes follow
	ReplyUnknownRoute Reply = 1 // the route is not among the origin's targets
	ReplyUnreachable  Reply = 2 // no alternative of the route could be dialled
	ReplyBadHeader    Reply = 3 // the header did not parse
	ReplyDraining     Reply = 4 // the origin is shutting down
)

// Error makes a refusal an error on the edge's side.
func (r Reply) Error() string {
	switch r {
	case ReplyOK:
		return "ok"
	case ReplyUnknownRoute:
		return "origin refused: unknown route"
	case ReplyUnreachable:
		return "origin refused: target unreachable"
	case ReplyBadHeader:
		return "origin refused: bad stream header"
	case ReplyDraining:
		return "origin refused: shutting down"
	}
	return fmt.Sprintf("origin refused: reply %d", byte(r))
}

// WriteReply sends the origin's reply on a stream.
func WriteReply(w io.Writer, r Reply) error {
	_, err := w.Write([]byte{byte(r)})
	return err
}

// Open opens a stream on s for h and returns without waiting for the
// reply: the header goes out with the stream's first Write (one frame, one
// packet) or at AwaitReply, whichever comes first. The returned stream's
// first Read consumes the reply, and fails with the Reply as its error if
// the origin refused.
func Open(ctx context.Context, s Session, h Header) (Stream, error) {
	hdr, err := h.AppendBinary(make([]byte, 0, 3+MaxRouteLen+18))
	if err != nil {
		return nil, err
	}
	st, err := s.OpenStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	return &replyStream{Stream: st, pending: hdr}, nil
}

// replyStream sends the header before the first byte of data, and reads the
// origin's Reply before the first byte of data. Only one goroutine at a
// time reads, so replied needs no lock.
type replyStream struct {
	Stream
	replied bool

	sent    atomic.Bool // the header is out
	mu      sync.Mutex
	pending []byte // the header, until sent
}

func (s *replyStream) Write(p []byte) (int, error) {
	if s.sent.Load() {
		return s.Stream.Write(p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent.Load() {
		return s.Stream.Write(p)
	}
	// sent turns true only once the header is out, so that no writer on
	// the fast path can put bytes ahead of it.
	n, err := s.Stream.Write(append(s.pending, p...))
	if err != nil {
		return max(0, n-len(s.pending)), fmt.Errorf("write stream header: %w", err)
	}
	s.sent.Store(true)
	s.pending = nil
	return len(p), nil
}

// flush sends the header if no Write has.
func (s *replyStream) flush() error {
	if s.sent.Load() {
		return nil
	}
	_, err := s.Write(nil)
	return err
}

// AwaitReply waits for the origin's reply and returns the refusal, if any,
// as an error. Until it returns nil no byte has reached the target, so a
// caller may try another session with the same bytes.
func (s *replyStream) AwaitReply() error {
	if s.replied {
		return nil
	}
	if err := s.flush(); err != nil {
		return err
	}
	var b [1]byte
	if _, err := io.ReadFull(s.Stream, b[:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("read reply: %w", err)
	}
	s.replied = true
	if r := Reply(b[0]); r != ReplyOK {
		return r
	}
	return nil
}

func (s *replyStream) Read(p []byte) (int, error) {
	if err := s.AwaitReply(); err != nil {
		return 0, err
	}
	return s.Stream.Read(p)
}
