package install

import (
	"embed"
	"fmt"
)

// The units are copies of ../deploy/systemd's: that directory is a module of
// its own, which go:embed cannot reach. TestUnitsMatchDeploy fails when the
// two differ; `go generate` copies them again.
//
//go:generate cp ../deploy/systemd/ferry-edge.service ../deploy/systemd/ferry-origin.service units/
//go:embed units/*.service
var units embed.FS

// unit returns the systemd unit of role ("edge" or "origin").
func unit(role string) ([]byte, error) {
	b, err := units.ReadFile("units/ferry-" + role + ".service")
	if err != nil {
		return nil, fmt.Errorf("systemd unit of %s: %w", role, err)
	}
	return b, nil
}
