package tunnel

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []Header{
		{Route: "chat"},
		{Route: "media", Client: netip.MustParseAddrPort("203.0.113.7:40000")},
		{Route: "x", Client: netip.MustParseAddrPort("[2001:db8::1]:443")},
		{Route: string(bytes.Repeat([]byte("r"), MaxRouteLen))},
	} {
		b, err := h.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		// Bytes after the header belong to the client and must stay unread.
		r := bytes.NewReader(append(b, "client bytes"...))
		got, err := ReadHeader(r)
		if err != nil {
			t.Fatalf("%+v: %v", h, err)
		}
		if got != h {
			t.Fatalf("got %+v, want %+v", got, h)
		}
		if r.Len() != len("client bytes") {
			t.Fatalf("%+v: read %d bytes past the header", h, len("client bytes")-r.Len())
		}
	}
}

func TestHeaderRefused(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":           {},
		"short":           {Version, 0},
		"version 2":       {2, 0, 1, 'a'},
		"unknown flag":    {Version, 0x80, 1, 'a'},
		"empty route":     {Version, 0, 0},
		"long route":      append([]byte{Version, 0, MaxRouteLen + 1}, bytes.Repeat([]byte("a"), MaxRouteLen+1)...),
		"truncated route": {Version, 0, 4, 'c', 'h'},
		"truncated addr":  {Version, FlagAddress, 1, 'a', 0, 0, 0},
	} {
		if _, err := ReadHeader(bytes.NewReader(b)); !errors.Is(err, ErrBadHeader) {
			t.Errorf("%s: err %v, want ErrBadHeader", name, err)
		}
	}
	if _, err := (Header{}).AppendBinary(nil); !errors.Is(err, ErrBadHeader) {
		t.Errorf("empty route encoded: %v", err)
	}
}

// FuzzReadHeader checks that no input crashes the parser, that it never
// reads past the header, and that what it accepts encodes back to the same
// bytes.
func FuzzReadHeader(f *testing.F) {
	for _, h := range []Header{{Route: "chat"}, {Route: "media", Client: netip.MustParseAddrPort("[::1]:80")}} {
		b, _ := h.AppendBinary(nil)
		f.Add(b)
	}
	f.Add([]byte{Version, FlagAddress, 1, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		h, err := ReadHeader(r)
		if err != nil {
			return
		}
		enc, err := h.AppendBinary(nil)
		if err != nil {
			t.Fatalf("accepted %+v does not encode: %v", h, err)
		}
		consumed := b[:len(b)-r.Len()]
		// IPv4 addresses are sent mapped; anything else mapped is read as
		// IPv4 and re-encoded mapped, so the bytes agree.
		if !bytes.Equal(enc, consumed) {
			t.Fatalf("read %x, encodes back as %x", consumed, enc)
		}
	})
}
