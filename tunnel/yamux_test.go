package tunnel

import "testing"

// TestBudget checks a session's memory manager: initial windows are always
// granted and counted, a stream grows past ColdWindow only once its reader
// has consumed Proof bytes fast, no growth takes the session past its
// limit, and an ended stream gives back all it held.
func TestBudget(t *testing.T) {
	b := newBudget(3<<20 + 512<<10)
	const initial = 256 << 10
	open := func() *span {
		m, _ := b.span()
		s := m.(*span)
		if err := s.ReserveMemory(initial, 255); err != nil {
			t.Fatalf("initial window refused: %v", err)
		}
		return s
	}
	grow := func(s *span) error { return s.ReserveMemory(s.held, 128) }
	// warm has s's reader prove itself at ColdWindow, then grows s.
	warm := func(s *span) error {
		for range Proof / (ColdWindow / 2) {
			if err := grow(s); err == nil {
				t.Fatalf("a stream grew past ColdWindow after %d bytes read fast", s.proved)
			}
		}
		return grow(s)
	}

	a := open()
	if err := grow(a); err != nil { // to 512 KiB
		t.Fatal(err)
	}
	if err := grow(a); err != nil { // to ColdWindow
		t.Fatal(err)
	}
	if err := warm(a); err != nil { // to 2 MiB, once proved
		t.Fatal(err)
	}
	if b.used != 2<<20 {
		t.Fatalf("used %d, want 2 MiB", b.used)
	}

	c := open()
	grow(c)
	grow(c)
	if err := warm(c); err == nil {
		t.Fatal("a stream grew the session past its budget")
	}
	// Initial windows go beyond the budget; they are counted all the same.
	var many []*span
	for range 8 {
		many = append(many, open())
	}
	if b.used != 2<<20+1<<20+8*initial {
		t.Fatalf("used %d after ten opens", b.used)
	}
	for _, s := range append(many, a, c) {
		s.Done()
	}
	if b.used != 0 {
		t.Fatalf("used %d after every stream ended", b.used)
	}
}
