package tunnel

import (
	"io"

	"github.com/quic-go/quic-go/quicvarint"
)

// Over QUIC the edge's hello (hello.go) is the first thing on the
// connection's first bidirectional stream, inside an HTTP/3 frame (RFC 9114
// §7.1) of a type reserved for greasing (§7.2.8: 0x1f*N + 0x21), which an
// HTTP/3 endpoint must skip:
//
//	+-----------------------+----------------+---------------------+
//	| type = helloFrameType | length = 34    | the hello (34)      |
//	| varint, 4 bytes       | varint, 1 byte | version flags proof |
//	+-----------------------+----------------+---------------------+
//
// The listener's answer, and the control messages after it, go bare, as
// over yamux: only the edge's first bytes must read as HTTP/3.
// parseHelloFrame reads this frame from what the listener has peeked.

// helloFrameType is 0x1f*0x5e1d + 0x21, a reserved type with nothing to
// tell it from any other; N is arbitrary.
const helloFrameType = 0x1f*0x5e1d + 0x21

// helloFrameLen is the length of the whole frame as the edge writes it.
var helloFrameLen = quicvarint.Len(helloFrameType) + quicvarint.Len(helloLen) + helloLen

// appendHelloFrame appends hello, framed, to b.
func appendHelloFrame(b, hello []byte) []byte {
	b = quicvarint.Append(b, helloFrameType)
	b = quicvarint.Append(b, uint64(len(hello)))
	return append(b, hello...)
}

// parseHelloFrame looks at b, the first bytes of a stream, for the hello
// frame. While b is too short to tell, it returns need, how many bytes it
// must see (more than len(b)). Once b cannot begin the frame (another
// frame type, another length), it returns need 0 and no hello: the stream
// is HTTP/3's. Once b holds the frame, it returns the hello and how many
// bytes the frame takes (n), to be consumed before the hello is read. A
// varint may be encoded longer than it needs, as HTTP/3 allows.
func parseHelloFrame(b []byte) (hello []byte, n, need int) {
	off := 0
	for _, want := range []uint64{helloFrameType, helloLen} {
		if len(b) <= off {
			return nil, 0, off + 1
		}
		l := 1 << (b[off] >> 6)
		if len(b) < off+l {
			return nil, 0, off + l
		}
		v, _, err := quicvarint.Parse(b[off : off+l])
		if err != nil || v != want {
			return nil, 0, 0
		}
		off += l
	}
	if len(b) < off+helloLen {
		return nil, 0, off + helloLen
	}
	return b[off : off+helloLen], off + helloLen, 0
}

// helloFramer is the edge's side of the hellos' stream: its first Write,
// the hello, goes out as the hello frame, in one piece; everything after,
// and all reads, as they are.
type helloFramer struct {
	io.ReadWriter
	framed bool
}

func (f *helloFramer) Write(p []byte) (int, error) {
	if f.framed {
		return f.ReadWriter.Write(p)
	}
	f.framed = true
	if _, err := f.ReadWriter.Write(appendHelloFrame(nil, p)); err != nil {
		return 0, err
	}
	return len(p), nil
}
