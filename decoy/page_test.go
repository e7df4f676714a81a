package decoy

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestPagePerInstall: one seed, one site, at every start; other seeds,
// other sites, in kind, size and dates, with nothing of ferry in them.
func TestPagePerInstall(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	a, b := newPage([]byte("host a"), time.Time{}, now), newPage([]byte("host a"), time.Time{}, now)
	if !bytes.Equal(a["index.html"].data, b["index.html"].data) || !a["index.html"].mod.Equal(b["index.html"].mod) || len(a) != len(b) {
		t.Fatal("the same seed made two sites")
	}
	hashes, sizes, dates := map[[32]byte]bool{}, map[int]bool{}, map[time.Time]bool{}
	const n = 200
	for i := range n {
		p := newPage(fmt.Appendf(nil, "host %d", i), time.Time{}, now)
		idx := p["index.html"]
		hashes[sha256.Sum256(idx.data)] = true
		sizes[len(idx.data)] = true
		dates[idx.mod] = true
		if idx.mod.After(now) || idx.mod.Before(now.AddDate(-3, 0, 0)) {
			t.Errorf("dated %v", idx.mod)
		}
		for name, f := range p {
			if strings.Contains(strings.ToLower(string(f.data)), "ferry") {
				t.Errorf("%s names ferry", name)
			}
		}
	}
	if len(hashes) != n || len(dates) != n || len(sizes) < n/4 {
		t.Errorf("%d seeds: %d bodies, %d sizes, %d dates", n, len(hashes), len(sizes), len(dates))
	}
	installed := now.AddDate(-1, 0, 0)
	if mod := newPage([]byte("x"), installed, now)["index.html"].mod; mod.Before(installed) || mod.After(installed.Add(21*24*time.Hour)) {
		t.Errorf("installed %v, page dated %v", installed, mod)
	}
}
