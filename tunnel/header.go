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

// Stream header, the first bytes the edge writes on every stream. Version 1:
//
//	+---------+-------+-----------+-----------------+--------------------------+
//	| version | flags | route len | route           | client address           |
//	| 1 byte  | 1     | 1, 1..64  | route len bytes | 18 bytes, if FlagAddress |
//	+---------+-------+-----------+-----------------+--------------------------+
//
// Version 2 carries the client's TLS server name after the route:
//
//	+---------+-------+-----------+-------+-----------+----------------+--------------------------+
//	| version | flags | route len | route | name len  | name           | client address           |
//	| 1 byte  | 1     | 1, 1..64  |       | 1, 1..253 | name len bytes | 18 bytes, if FlagAddress |
//	+---------+-------+-----------+-------+-----------+----------------+--------------------------+
//
// The route is a name of the origin's FERRY_ORIGIN_TARGETS. The name is the
// server name of a ClientHello that the edge passes through untouched
// (media), for a route whose "*.SUFFIX:PORT" alternative dials it: a DNS
// name of letters, digits, '-' and '.', no label empty or longer than 63
// bytes (CheckServerName). The edge writes version 2 only when it has a
// name, and version 1 otherwise, so that an origin that knows only version
// 1 still serves chat; such an origin answers a version 2 header with
// ReplyBadHeader. The origin dials a name only if the route's pattern
// allows it, and answers ReplyNotAllowed otherwise: it, not the edge, is
// the authority on what may be dialled.
//
// The client address, present only when the operator asked for it, is the
// client's IP as 16 bytes (IPv4 as an IPv4-mapped IPv6 address) and its port
// as 2 bytes, both big-endian. Unknown flags are refused, so that a newer
// edge fails loudly against an older origin.
//
// The origin answers with one Reply byte before any byte of the target.
// After a Reply other than ReplyOK it closes the stream.

// The stream header versions this build speaks: Version1 without a server
// name, Version2 with one.
const (
	Version1 = 1
	Version2 = 2
)

// FlagAddress marks a header that carries the client's address.
const FlagAddress = 1 << 0

// MaxRouteLen is the longest route name a header carries.
const MaxRouteLen = 64

// MaxServerNameLen is the longest server name a header carries, the longest
// DNS name.
const MaxServerNameLen = 253

// maxHeaderLen is the longest header.
const maxHeaderLen = 3 + MaxRouteLen + 1 + MaxServerNameLen + 18

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

// CheckServerName checks that name is a DNS name that a header may carry: 1
// to 253 bytes of letters, digits, '-' and '.', in labels of 1 to 63 bytes,
// with no trailing dot. Names with other bytes (an address with a port, a
// path, an underscore) could steer a dial elsewhere than DNS would, so they
// are refused however they match a pattern.
func CheckServerName(name string) error {
	if len(name) == 0 || len(name) > MaxServerNameLen {
		return fmt.Errorf("server name of %d bytes", len(name))
	}
	label := 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '.':
			if label == 0 {
				return fmt.Errorf("server name %q has an empty label", name)
			}
			label = 0
			continue
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
		default:
			return fmt.Errorf("server name %q holds %q", name, c)
		}
		if label++; label > 63 {
			return fmt.Errorf("server name %q has a label longer than 63 bytes", name)
		}
	}
	if label == 0 {
		return fmt.Errorf("server name %q has an empty label", name)
	}
	return nil
}

// AppendBinary appends the encoded header to b: version 2 if it has a
// server name, version 1 otherwise.
func (h Header) AppendBinary(b []byte) ([]byte, error) {
	if len(h.Route) == 0 || len(h.Route) > MaxRouteLen {
		return b, fmt.Errorf("%w: route of %d bytes", ErrBadHeader, len(h.Route))
	}
	version := byte(Version1)
	if h.ServerName != "" {
		if err := CheckServerName(h.ServerName); err != nil {
			return b, fmt.Errorf("%w: %w", ErrBadHeader, err)
		}
		version = Version2
	}
	var flags byte
	if h.Client.IsValid() {
		flags |= FlagAddress
	}
	b = append(b, version, flags, byte(len(h.Route)))
	b = append(b, h.Route...)
	if version == Version2 {
		b = append(b, byte(len(h.ServerName)))
		b = append(b, h.ServerName...)
	}
	if h.Client.IsValid() {
		ip := h.Client.Addr().As16()
		b = append(b, ip[:]...)
		b = binary.BigEndian.AppendUint16(b, h.Client.Port())
	}
	return b, nil
}

// ReadHeader reads one header, of either version, from r, reading no byte
// past it.
func ReadHeader(r io.Reader) (Header, error) {
	var buf [maxHeaderLen]byte
	if _, err := io.ReadFull(r, buf[:3]); err != nil {
		return Header{}, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	version, flags, n := buf[0], buf[1], int(buf[2])
	if version != Version1 && version != Version2 {
		return Header{}, fmt.Errorf("%w: version %d", ErrBadHeader, version)
	}
	if flags&^FlagAddress != 0 {
		return Header{}, fmt.Errorf("%w: flags %#x", ErrBadHeader, flags)
	}
	if n == 0 || n > MaxRouteLen {
		return Header{}, fmt.Errorf("%w: route of %d bytes", ErrBadHeader, n)
	}
	addrLen := 0
	if flags&FlagAddress != 0 {
		addrLen = 18
	}
	// Version 1: the route and the address. Version 2: the route and the
	// name's length, then the name and the address.
	at, rest := 3, n+addrLen
	if version == Version2 {
		rest = n + 1
	}
	if _, err := io.ReadFull(r, buf[at:at+rest]); err != nil {
		return Header{}, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	h := Header{Route: string(buf[at : at+n])}
	at += n
	if version == Version2 {
		m := int(buf[at])
		at++
		if m == 0 || m > MaxServerNameLen {
			return Header{}, fmt.Errorf("%w: server name of %d bytes", ErrBadHeader, m)
		}
		if _, err := io.ReadFull(r, buf[at:at+m+addrLen]); err != nil {
			return Header{}, fmt.Errorf("%w: %w", ErrBadHeader, err)
		}
		name := buf[at : at+m]
		if err := CheckServerName(string(name)); err != nil {
			return Header{}, fmt.Errorf("%w: %w", ErrBadHeader, err)
		}
		h.ServerName = string(name)
		at += m
	}
	if addrLen != 0 {
		a := buf[at : at+18]
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
	// ReplyNotAllowed refuses a server name that no "*.SUFFIX" alternative
	// of the route allows, or any name on a route that has none. As every
	// refusal but ReplyDraining, the edge does not retry it elsewhere.
	ReplyNotAllowed Reply = 5
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
	case ReplyNotAllowed:
		return "origin refused: server name not allowed on the route"
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
func Open(ctx context.Context, s Session, h Header) (*EdgeStream, error) {
	hdr, err := h.AppendBinary(make([]byte, 0, 3+len(h.Route)+1+len(h.ServerName)+18))
	if err != nil {
		return nil, err
	}
	st, err := s.OpenStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	if RouteOf(h.Route) == RouteMedia {
		SetBulk(st) // a phone's upload gives way to chat on a slow link
	}
	return &EdgeStream{Stream: st, pending: hdr}, nil
}

// EdgeStream is a stream the edge opened with Open: it sends the header
// before the first byte of data, and reads the origin's Reply before the
// first byte of data. Only one goroutine at a time reads, so replied needs
// no lock.
type EdgeStream struct {
	Stream
	replied bool

	sent    atomic.Bool // the header is out
	mu      sync.Mutex
	pending []byte // the header, until sent
}

func (s *EdgeStream) Write(p []byte) (int, error) {
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
func (s *EdgeStream) flush() error {
	if s.sent.Load() {
		return nil
	}
	_, err := s.Write(nil)
	return err
}

// AwaitReply waits for the origin's reply and returns the refusal, if any,
// as an error. Until it returns nil no byte has reached the target, so a
// caller may try another session with the same bytes, unless the error is
// ErrPeerAborted: the origin took the stream and then aborted it (its
// target reset the connection), and the reset discarded the reply.
func (s *EdgeStream) AwaitReply() error {
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

func (s *EdgeStream) Read(p []byte) (int, error) {
	if err := s.AwaitReply(); err != nil {
		return 0, err
	}
	return s.Stream.Read(p)
}
