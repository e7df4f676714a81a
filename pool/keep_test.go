package pool

import (
	"testing"
	"time"
)

// TestBackoff checks that waits grow, stay under the cap, and are jittered.
func TestBackoff(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Max: 2 * time.Second}
	for n := range 10 {
		ceil := min(b.Base<<n, b.Max)
		if d := b.Next(); d <= 0 || d > ceil {
			t.Fatalf("wait %d is %v, want in (0, %v]", n, d, ceil)
		}
	}
	b.Reset()
	seen := map[time.Duration]bool{}
	for range 20 {
		b.Reset()
		b.n = 5
		seen[b.Next()] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct waits in 20 draws: not jittered", len(seen))
	}
}
