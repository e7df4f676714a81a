package config

import (
	"strings"
	"testing"
)

// TestClosest checks the "did you mean" guess: a typo a few edits away
// gets the name, a far one or a short word nothing.
func TestClosest(t *testing.T) {
	names := []string{"FERRY_EDGE_LISTEN", "FERRY_EDGE_ORIGINS", "FERRY_ORIGIN_LISTEN", "FERRY_SECRET"}
	for _, tc := range []struct{ s, want string }{
		{"FERRY_EDGE_LISTN", "FERRY_EDGE_LISTEN"},
		{"FERRY_EDGE_ORIGIN", "FERRY_EDGE_ORIGINS"},
		{"FERRY_SECERT", "FERRY_SECRET"},
		{"FERRY_ORIGN_LISTEN", "FERRY_ORIGIN_LISTEN"},
		{"FERRY_BANANA", ""},
		{"FERRY_EDGE_LISTEN_TLS_CERTIFICATE", ""},
	} {
		if got := Closest(tc.s, names); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.s, got, tc.want)
		}
	}
	if got := Closest("chek", []string{"check", "deploy"}); got != "check" {
		t.Errorf("chek: %q", got)
	}
	if got := Closest("ab", []string{"ad"}); got != "" {
		t.Errorf("a two-letter word is guessed: %q", got)
	}
	err := checkUnknown([]string{"FERRY_EDGE_PUBLC_HOST=x"})
	if err == nil || !strings.Contains(err.Error(), "did you mean FERRY_EDGE_PUBLIC_HOST?") {
		t.Errorf("checkUnknown: %v", err)
	}
	err = checkUnknown([]string{"FERRY_BANANA=x"})
	if err == nil || strings.Contains(err.Error(), "did you mean") || !strings.Contains(err.Error(), "known: ") {
		t.Errorf("checkUnknown, far: %v", err)
	}
}
