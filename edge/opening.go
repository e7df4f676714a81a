package edge

// What a client's first bytes are, told apart without a round trip.
//
// A WhatsApp chat client speaks first and at once (../shared/README.md §4):
//
//	[ 'E' 'D' 0x00 0x01 | length, 3 bytes big-endian | routing data ]   optional
//	  'W' 'A' b2 b3                                                      b2 b3 vary by client
//	  length, 3 bytes big-endian, at least 1 | 0x12 ...                  the first frame: a HandshakeMessage's clientHello
//
// An HTTP request starts with a method token and a space; a TLS ClientHello
// with 0x16. Each is told apart within 2 to 7 bytes, and a whole WhatsApp
// opening fits the first read. A prober that speaks WhatsApp's own protocol
// cannot be told apart from the app: the app has no secret.

// Opening is what a client's first bytes are.
type Opening int

const (
	// OpeningMore: the bytes so far fit more than one kind; read more.
	OpeningMore Opening = iota
	// OpeningChat: a WhatsApp chat opening, for the listener's route.
	OpeningChat
	// OpeningHTTP: an HTTP request, or the start of one, for the web site.
	OpeningHTTP
	// OpeningOther: anything else, answered by the web site as a malformed
	// request.
	OpeningOther
)

func (o Opening) String() string {
	switch o {
	case OpeningMore:
		return "more"
	case OpeningChat:
		return "chat"
	case OpeningHTTP:
		return "http"
	}
	return "other"
}

// MaxRoutingData bounds the routing data of an opening's edge-routing block:
// WhatsApp's are a few bytes (the 2021 capture's are 4), and the whole
// opening must fit the first read's buffer.
const MaxRoutingData = 1024

// Classify tells what b, the first bytes of a client, are. It returns
// OpeningMore only while b is a proper prefix of a chat opening or of an
// HTTP method token.
func Classify(b []byte) Opening {
	// "E" and "W" may begin a method too: a chat prefix waits for the
	// byte that tells.
	if o := chat(b); o != OpeningOther {
		return o
	}
	return webOpening(b)
}

// chat matches b against a chat opening: OpeningChat once it has matched
// through the first frame's 0x12, OpeningMore while b is a prefix of one,
// OpeningOther as soon as a byte does not fit.
func chat(b []byte) Opening {
	i := 0
	if len(b) > 0 && b[0] == 'E' {
		if r := prefix(b, "ED\x00\x01"); r != OpeningChat {
			return r
		}
		if len(b) < 7 {
			return OpeningMore
		}
		n := int(b[4])<<16 | int(b[5])<<8 | int(b[6])
		if n > MaxRoutingData {
			return OpeningOther
		}
		i = 7 + n
	}
	// 'W' 'A' b2 b3, then a frame length of at least 1, then 0x12.
	if r := prefix(b[min(i, len(b)):], "WA"); r != OpeningChat {
		return r
	}
	if len(b) < i+8 {
		return OpeningMore
	}
	if b[i+4]|b[i+5]|b[i+6] == 0 || b[i+7] != 0x12 {
		return OpeningOther
	}
	return OpeningChat
}

// prefix reports OpeningChat if b starts with p, OpeningMore if b is a
// proper prefix of p, OpeningOther otherwise.
func prefix(b []byte, p string) Opening {
	for i := range len(p) {
		if i == len(b) {
			return OpeningMore
		}
		if b[i] != p[i] {
			return OpeningOther
		}
	}
	return OpeningChat
}

// webOpening is OpeningHTTP for b that is a method token (RFC 9110 tchar)
// followed by a space, or the start of one, and OpeningOther otherwise.
func webOpening(b []byte) Opening {
	for i, c := range b {
		if c == ' ' && i > 0 {
			return OpeningHTTP
		}
		if !isTchar(c) {
			return OpeningOther
		}
	}
	return OpeningHTTP
}

func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
