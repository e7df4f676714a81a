package tunnel

import (
	"errors"
	"io"
	"net"
	"testing"
)

// runHellos runs both sides over a pipe and returns their errors.
func runHellos(edgeKey, originKey, edgeEKM, originEKM, token []byte, flags byte) (edgeFlags byte, edgeErr, originErr error) {
	a, b := net.Pipe()
	done := make(chan error, 1)
	go func() {
		err := helloOrigin(b, originKey, originEKM, token, flags)
		b.Close()
		done <- err
	}()
	edgeFlags, edgeErr = helloEdge(a, edgeKey, edgeEKM, token)
	a.Close()
	return edgeFlags, edgeErr, <-done
}

func TestHello(t *testing.T) {
	key := helloKey("0123456789abcdef0123456789abcdef")
	other := helloKey("another secret, also long enough..")
	ekm := []byte("exporter of one TLS session......")
	ekm2 := []byte("exporter of another TLS session..")
	token := []byte("a token")

	flags, eerr, oerr := runHellos(key, key, ekm, ekm, nil, FlagClientAddress)
	if eerr != nil || oerr != nil || flags&FlagClientAddress == 0 || flags&FlagBound == 0 {
		t.Fatalf("bound: flags %b, %v, %v", flags, eerr, oerr)
	}
	if _, eerr, oerr := runHellos(key, key, nil, nil, token, 0); eerr != nil || oerr != nil {
		t.Fatalf("bound to the token: %v, %v", eerr, oerr)
	}
	// A man in the middle holds two TLS sessions: the origin sees the
	// edge's proof bound to the other one.
	if _, _, oerr := runHellos(key, key, ekm, ekm2, nil, 0); !errors.Is(oerr, ErrBadHello) {
		t.Fatalf("origin, other session: %v", oerr)
	}
	// The edge bound to TLS reaching an origin whose TLS ended elsewhere.
	if _, _, oerr := runHellos(key, key, ekm, nil, token, 0); !errors.Is(oerr, ErrBadHello) {
		t.Fatalf("origin without TLS: %v", oerr)
	}
	if _, _, oerr := runHellos(other, key, ekm, ekm, nil, 0); !errors.Is(oerr, ErrBadHello) {
		t.Fatalf("origin, wrong secret: %v", oerr)
	}

	// And the edge checks the origin: an answer bound to another session,
	// or made without the secret, is refused.
	for name, answer := range map[string][]byte{
		"other session": helloMsg(key, "ferry origin hello", FlagBound, ekm2),
		"wrong secret":  helloMsg(other, "ferry origin hello", FlagBound, ekm),
		"unbound":       helloMsg(key, "ferry origin hello", 0, token),
		"edge's role":   helloMsg(key, "ferry edge hello", FlagBound, ekm),
	} {
		a, b := net.Pipe()
		go func() {
			io.ReadFull(b, make([]byte, helloLen))
			b.Write(answer)
			b.Close()
		}()
		_, err := helloEdge(a, key, ekm, nil)
		a.Close()
		if !errors.Is(err, ErrBadHello) {
			t.Errorf("%s: %v, want ErrBadHello", name, err)
		}
	}
}
