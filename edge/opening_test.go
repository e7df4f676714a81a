package edge

import (
	"bytes"
	"testing"

	"ferry/internal/fake"
)

var openingNative, openingWeb = fake.OpeningNative, fake.OpeningWeb

func TestClassify(t *testing.T) {
	cases := []struct {
		in   string
		want Opening
	}{
		{string(openingNative), OpeningChat},
		{string(openingWeb), OpeningChat},
		{"WA\x05\x02\x00\x01\x00\x12", OpeningChat},
		{"", OpeningMore},
		{"W", OpeningMore},
		{"E", OpeningMore},
		{"ED\x00\x01\x00", OpeningMore},
		{"WA\x06\x03\x00\x00\x24", OpeningMore},
		{string(openingNative[:len(openingNative)-40]), OpeningMore},
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", OpeningHTTP},
		{"HEAD / HTTP/1.0\r\n\r\n", OpeningHTTP},
		{"GE", OpeningHTTP},
		{"EDIT /x HTTP/1.1\r\n", OpeningHTTP},
		{"WAIT /x HTTP/1.1\r\n", OpeningHTTP},
		{"\x16\x03\x01\x02\x00\x01", OpeningOther},
		{" GET /", OpeningOther},
		{"\r\n", OpeningOther},
		{"WA\x06\x03\x00\x00\x00\x12", OpeningOther}, // a frame of no bytes
		{"WA\x06\x03\x00\x00\x24\x13", OpeningOther}, // not a clientHello
		{"ED\x00\x02", OpeningOther},
		{"ED\x00\x01\xff\xff\xffWA", OpeningOther}, // routing data past the bound
		{"\x00\x01\x02", OpeningOther},
	}
	for _, c := range cases {
		if got := Classify([]byte(c.in)); got != c.want {
			t.Errorf("Classify(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestClassifySplit feeds every opening a byte at a time, as a client whose
// first write is split: every proper prefix asks for more, and the whole
// is told right.
func TestClassifySplit(t *testing.T) {
	for _, o := range [][]byte{openingNative, openingWeb} {
		for i := range chatEnd(o) {
			if got := Classify(o[:i]); got != OpeningMore {
				t.Fatalf("Classify(%x) = %v, want more", o[:i], got)
			}
		}
		if got := Classify(o); got != OpeningChat {
			t.Fatalf("Classify(%x) = %v", o, got)
		}
	}
}

// chatEnd is how many bytes of o Classify needs: through the first frame's
// 0x12.
func chatEnd(o []byte) int {
	return bytes.Index(o, []byte("WA")) + 8
}

func FuzzClassify(f *testing.F) {
	for _, s := range [][]byte{openingNative, openingWeb, []byte("GET / HTTP/1.1\r\n\r\n"), {0x16, 3, 1}, nil} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := Classify(b)
		// A decision, once made, sends the client the same way whatever
		// follows: the edge reads more only on OpeningMore. (An HTTP
		// start may still turn malformed; both go to the web site.)
		if got != OpeningMore {
			if again := Classify(append(bytes.Clone(b), 0x12, 'x', ' ')); (again == OpeningChat) != (got == OpeningChat) {
				t.Fatalf("Classify(%x) = %v, but %v with more bytes", b, got, again)
			}
		}
		// Past the longest opening, Classify has decided.
		if len(b) > 7+MaxRoutingData+8 && got == OpeningMore {
			t.Fatalf("Classify of %d bytes still wants more", len(b))
		}
	})
}
