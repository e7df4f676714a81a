package fake

import "encoding/hex"

// The first bytes of WhatsApp chat clients, from ../shared/README.md §4.
var (
	// OpeningNative is the 2021 capture of the Android app: an edge-routing
	// block, then WA 04 02 and a 36-byte clientHello frame.
	OpeningNative = mustHex("454400010000040802" + "0d08" + "57410402" + "000024" + "12220a20" + key)
	// OpeningWeb is a web client's: WA 06 03, then the same frame.
	OpeningWeb = mustHex("57410603" + "000024" + "12220a20" + key)
)

// key stands for a client's X25519 key.
const key = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
