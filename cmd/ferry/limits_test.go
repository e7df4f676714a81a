package main

import (
	"bytes"
	"io"
	"regexp"
	"testing"
)

// TestHelpPerAddressCapOff: `ferry help edge` shows FERRY_EDGE_MAX_CONNS_PER_IP
// off by default (carrier-grade NAT: thousands of phones behind one address).
func TestHelpPerAddressCapOff(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"help", "edge"}, &out, io.Discard); code != exitOK {
		t.Fatalf("help edge: exit %d", code)
	}
	if !regexp.MustCompile(`(?m)^  FERRY_EDGE_MAX_CONNS_PER_IP\n(?:      .*\n)*?      default: 0\n`).Match(out.Bytes()) {
		t.Errorf("help edge does not give FERRY_EDGE_MAX_CONNS_PER_IP the default 0:\n%s", out.String())
	}
}
