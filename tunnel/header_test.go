package tunnel

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, dnsTestMain()...) }

// longName is a server name of the longest length, in labels of 63.
var longName = strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", 61)

func TestHeaderRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		h       Header
		version byte
	}{
		{Header{Route: "chat"}, Version1},
		{Header{Route: "media", Client: netip.MustParseAddrPort("203.0.113.7:40000")}, Version1},
		{Header{Route: "x", Client: netip.MustParseAddrPort("[2001:db8::1]:443")}, Version1},
		{Header{Route: string(bytes.Repeat([]byte("r"), MaxRouteLen))}, Version1},
		{Header{Route: "media", ServerName: "mmg.whatsapp.net"}, Version2},
		{Header{Route: "media", ServerName: "Media-FRA5-1.CDN.whatsapp.net", Client: netip.MustParseAddrPort("203.0.113.7:40000")}, Version2},
		{Header{Route: "m", ServerName: "x", Client: netip.MustParseAddrPort("[2001:db8::1]:443")}, Version2},
		{Header{Route: string(bytes.Repeat([]byte("r"), MaxRouteLen)), ServerName: longName}, Version2},
	} {
		b, err := tc.h.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != tc.version {
			t.Errorf("%+v: encoded as version %d, want %d", tc.h, b[0], tc.version)
		}
		// Bytes after the header belong to the client and must stay unread.
		r := bytes.NewReader(append(b, "client bytes"...))
		got, err := ReadHeader(r)
		if err != nil {
			t.Fatalf("%+v: %v", tc.h, err)
		}
		if got != tc.h {
			t.Fatalf("got %+v, want %+v", got, tc.h)
		}
		if r.Len() != len("client bytes") {
			t.Fatalf("%+v: read %d bytes past the header", tc.h, len("client bytes")-r.Len())
		}
	}
	if len(longName) != MaxServerNameLen {
		t.Fatalf("longName has %d bytes", len(longName))
	}
}

// TestHeaderVersion1 reads the bytes an edge that knows only version 1
// writes, as literal bytes, so that a change of the encoder cannot hide a
// change of what the reader accepts.
func TestHeaderVersion1(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want Header
	}{
		{[]byte{1, 0, 4, 'c', 'h', 'a', 't'}, Header{Route: "chat"}},
		{append([]byte{1, FlagAddress, 1, 'm', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7}, 0x9c, 0x40),
			Header{Route: "m", Client: netip.MustParseAddrPort("203.0.113.7:40000")}},
	} {
		r := bytes.NewReader(append(tc.b, 0x12, 0x22))
		got, err := ReadHeader(r)
		if err != nil || got != tc.want {
			t.Errorf("%x: got %+v, %v, want %+v", tc.b, got, err, tc.want)
		}
		if r.Len() != 2 {
			t.Errorf("%x: read %d bytes past the header", tc.b, 2-r.Len())
		}
	}
	// And version 2 is laid out as header.go says.
	b, err := Header{Route: "m", ServerName: "a.b"}.AppendBinary(nil)
	if want := []byte{2, 0, 1, 'm', 3, 'a', '.', 'b'}; err != nil || !bytes.Equal(b, want) {
		t.Errorf("version 2 encodes as %x, %v, want %x", b, err, want)
	}
}

func TestHeaderRefused(t *testing.T) {
	v2 := func(name string) []byte { return append([]byte{Version2, 0, 1, 'm', byte(len(name))}, name...) }
	for name, b := range map[string][]byte{
		"empty":             {},
		"short":             {Version1, 0},
		"version 3":         {3, 0, 1, 'a'},
		"version 0":         {0, 0, 1, 'a'},
		"unknown flag":      {Version1, 0x80, 1, 'a'},
		"unknown flag v2":   {Version2, 0x80, 1, 'a', 1, 'b'},
		"empty route":       {Version1, 0, 0},
		"empty route v2":    {Version2, 0, 0, 1, 'b'},
		"long route":        append([]byte{Version1, 0, MaxRouteLen + 1}, bytes.Repeat([]byte("a"), MaxRouteLen+1)...),
		"truncated route":   {Version1, 0, 4, 'c', 'h'},
		"truncated addr":    {Version1, FlagAddress, 1, 'a', 0, 0, 0},
		"no name length":    {Version2, 0, 1, 'm'},
		"empty name":        v2(""),
		"truncated name":    {Version2, 0, 1, 'm', 5, 'a', 'b'},
		"truncated addr v2": {Version2, FlagAddress, 1, 'm', 3, 'a', '.', 'b', 0, 0},
		"long name":         v2(longName + "c"),
		"long label":        v2(strings.Repeat("a", 64) + ".net"),
		"leading dot":       v2(".whatsapp.net"),
		"trailing dot":      v2("mmg.whatsapp.net."),
		"empty label":       v2("mmg..whatsapp.net"),
		"dot":               v2("."),
		"port":              v2("evil.example:443"),
		"address":           v2("[::1]"),
		"slash":             v2("a/b.whatsapp.net"),
		"underscore":        v2("a_b.whatsapp.net"),
		"space":             v2("a b"),
		"wildcard":          v2("*.whatsapp.net"),
		"nul":               v2("a\x00.whatsapp.net"),
		"high byte":         v2("\xc3\xa9.whatsapp.net"),
	} {
		if _, err := ReadHeader(bytes.NewReader(b)); !errors.Is(err, ErrBadHeader) {
			t.Errorf("%s: err %v, want ErrBadHeader", name, err)
		}
	}
	for _, h := range []Header{
		{},
		{ServerName: "mmg.whatsapp.net"},
		{Route: "media", ServerName: "evil.example:443"},
		{Route: "media", ServerName: "mmg.whatsapp.net."},
		{Route: "media", ServerName: longName + "c"},
	} {
		if b, err := h.AppendBinary(nil); !errors.Is(err, ErrBadHeader) || len(b) != 0 {
			t.Errorf("%+v encoded as %x, %v", h, b, err)
		}
	}
}

// FuzzReadHeader checks that no input crashes the parser, that it never
// reads past the header, and that what it accepts encodes back to the same
// bytes, in both versions.
func FuzzReadHeader(f *testing.F) {
	for _, h := range []Header{
		{Route: "chat"},
		{Route: "media", Client: netip.MustParseAddrPort("[::1]:80")},
		{Route: "media", ServerName: "mmg.whatsapp.net"},
		{Route: "media", ServerName: "media-fra5-1.cdn.whatsapp.net", Client: netip.MustParseAddrPort("203.0.113.7:40000")},
	} {
		b, _ := h.AppendBinary(nil)
		f.Add(b)
	}
	f.Add([]byte{Version1, FlagAddress, 1, 'a'})
	f.Add([]byte{Version2, FlagAddress, 1, 'a', 3, 'a', '.', '.'})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		h, err := ReadHeader(r)
		if err != nil {
			if !errors.Is(err, ErrBadHeader) {
				t.Fatalf("%x: error %v is not ErrBadHeader", b, err)
			}
			return
		}
		enc, err := h.AppendBinary(nil)
		if err != nil {
			t.Fatalf("accepted %+v does not encode: %v", h, err)
		}
		consumed := b[:len(b)-r.Len()]
		// IPv4 addresses are sent mapped; anything else mapped is read as
		// IPv4 and re-encoded mapped, so the bytes agree. That the two are
		// equal also proves that ReadHeader stopped at the header's end.
		if !bytes.Equal(enc, consumed) {
			t.Fatalf("read %x, encodes back as %x", consumed, enc)
		}
		if h.ServerName != "" && CheckServerName(h.ServerName) != nil {
			t.Fatalf("accepted server name %q", h.ServerName)
		}
	})
}
