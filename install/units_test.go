package install

import (
	"bytes"
	"os"
	"testing"
)

// TestUnitsMatchDeploy keeps the embedded units identical to the ones the
// deploy/ directory documents.
func TestUnitsMatchDeploy(t *testing.T) {
	for _, role := range []string{"edge", "origin"} {
		want, err := os.ReadFile("../deploy/systemd/ferry-" + role + ".service")
		if err != nil {
			t.Fatal(err)
		}
		got, err := unit(role)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("install/units/ferry-%s.service differs from deploy/systemd's (%v): run go generate ./install", role, err)
		}
	}
}
