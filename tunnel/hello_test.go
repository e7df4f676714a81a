package tunnel

import (
	"errors"
	"io"
	"net"
	"testing"
)

// runHellos runs a dialer with flags df against a listener with flags lf
// over a pipe, and returns what each saw.
func runHellos(dKey, lKey, dEKM, lEKM, token []byte, df, lf byte) (dPeer, lPeer byte, dErr, lErr error) {
	a, b := net.Pipe()
	done := make(chan error, 1)
	go func() {
		var err error
		lPeer, err = helloSecond(b, lKey, lEKM, token, lf)
		b.Close()
		done <- err
	}()
	dPeer, dErr = helloFirst(a, dKey, dEKM, token, df)
	a.Close()
	lErr = <-done
	return dPeer, lPeer, dErr, lErr
}

func TestHello(t *testing.T) {
	key := helloKey("0123456789abcdef0123456789abcdef")
	other := helloKey("another secret, also long enough..")
	ekm := []byte("exporter of one TLS session......")
	ekm2 := []byte("exporter of another TLS session..")
	token := []byte("a token")
	const edge, origin = 0, FlagOrigin

	// An edge dials an origin, and in reverse mode an origin an edge.
	dp, lp, derr, lerr := runHellos(key, key, ekm, ekm, nil, edge, origin|FlagClientAddress)
	if derr != nil || lerr != nil || dp&FlagClientAddress == 0 || dp&FlagBound == 0 || lp&FlagOrigin != 0 {
		t.Fatalf("bound: flags %b %b, %v, %v", dp, lp, derr, lerr)
	}
	dp, lp, derr, lerr = runHellos(key, key, ekm, ekm, nil, origin|FlagClientAddress, edge)
	if derr != nil || lerr != nil || lp&FlagClientAddress == 0 || dp&FlagOrigin != 0 {
		t.Fatalf("reverse: flags %b %b, %v, %v", dp, lp, derr, lerr)
	}
	if _, _, derr, lerr := runHellos(key, key, nil, nil, token, edge, origin); derr != nil || lerr != nil {
		t.Fatalf("bound to the token: %v, %v", derr, lerr)
	}
	// Two origins, or two edges, both learn why they fail.
	for _, f := range []byte{edge, origin} {
		if _, _, derr, lerr := runHellos(key, key, ekm, ekm, nil, f, f); !errors.Is(derr, ErrSameRole) || !errors.Is(lerr, ErrSameRole) {
			t.Fatalf("same role %b: %v, %v", f, derr, lerr)
		}
	}
	// A man in the middle holds two TLS sessions: the listener sees the
	// dialer's proof bound to the other one.
	if _, _, _, lerr := runHellos(key, key, ekm, ekm2, nil, edge, origin); !errors.Is(lerr, ErrBadHello) {
		t.Fatalf("listener, other session: %v", lerr)
	}
	// The dialer bound to TLS reaching a listener whose TLS ended elsewhere.
	if _, _, _, lerr := runHellos(key, key, ekm, nil, token, edge, origin); !errors.Is(lerr, ErrBadHello) {
		t.Fatalf("listener without TLS: %v", lerr)
	}
	if _, _, _, lerr := runHellos(other, key, ekm, ekm, nil, edge, origin); !errors.Is(lerr, ErrBadHello) {
		t.Fatalf("listener, wrong secret: %v", lerr)
	}

	// And the dialer checks the listener: an answer bound to another
	// session, made without the secret, or its own hello reflected, is
	// refused.
	for name, answer := range map[string][]byte{
		"other session": helloMsg(key, origin|FlagBound, ekm2),
		"wrong secret":  helloMsg(other, origin|FlagBound, ekm),
		"unbound":       helloMsg(key, origin, token),
		"reflected":     helloMsg(key, edge|FlagBound, ekm),
	} {
		a, b := net.Pipe()
		go func() {
			io.ReadFull(b, make([]byte, helloLen))
			b.Write(answer)
			b.Close()
		}()
		_, err := helloFirst(a, key, ekm, nil, edge)
		a.Close()
		if !errors.Is(err, ErrBadHello) && !errors.Is(err, ErrSameRole) {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}
}
