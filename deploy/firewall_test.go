package deploy

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// cdnOnly is the ruleset generator, relative to this package.
const cdnOnly = "firewall/cdn-only.sh"

// runCDNOnly runs cdn-only.sh with args and list as its standard input, and
// returns its standard output and whether it exited 0.
func runCDNOnly(t testing.TB, list string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{cdnOnly}, args...)...)
	cmd.Stdin = strings.NewReader(list)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		if ee.ExitCode() != 1 && ee.ExitCode() != 2 {
			t.Fatalf("cdn-only.sh exited %d: %s", ee.ExitCode(), errOut.String())
		}
		return out.String(), false
	}
	if err != nil {
		t.Fatalf("cdn-only.sh: %v", err)
	}
	return out.String(), true
}

// elements are the ranges of the ruleset's two sets, IPv4's then IPv6's.
var elements = regexp.MustCompile(`(?m)^\s*set (cdn[46]) \{[^}]*?(?:elements = \{ ([^}]*) \})?\s*\}`)

func ranges(t testing.TB, ruleset string) (v4, v6 []string) {
	t.Helper()
	sets := elements.FindAllStringSubmatch(ruleset, -1)
	if len(sets) != 2 || sets[0][1] != "cdn4" || sets[1][1] != "cdn6" {
		t.Fatalf("no cdn4 and cdn6 sets in the ruleset:\n%s", ruleset)
	}
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ", ")
	}
	return split(sets[0][2]), split(sets[1][2])
}

// wantRanges is what cdn-only.sh must make of list, by Go's own parser: the
// ranges of each family in order, or ok false when it must refuse the list.
// The script takes no embedded IPv4 or zone in IPv6 (no CDN list has them).
func wantRanges(list string) (v4, v6 []string, ok bool) {
	if strings.ContainsRune(list, 0) {
		return nil, nil, false
	}
	for line := range strings.SplitSeq(list, "\n") {
		line, _, _ = strings.Cut(line, "#")
		line = strings.Trim(line, " \t\n\v\f\r")
		if line == "" {
			continue
		}
		addr, err := netip.ParseAddr(line)
		if strings.Contains(line, "/") {
			var p netip.Prefix
			p, err = netip.ParsePrefix(line)
			addr = p.Addr()
		}
		switch {
		case err != nil || addr.Zone() != "":
			return nil, nil, false
		case addr.Is4():
			v4 = append(v4, line)
		case strings.Contains(line, "."):
			return nil, nil, false
		default:
			v6 = append(v6, line)
		}
	}
	return v4, v6, len(v4)+len(v6) > 0
}

// checkCDNOnly runs cdn-only.sh on list and checks it against wantRanges.
func checkCDNOnly(t testing.TB, list string) (ruleset string) {
	t.Helper()
	out, ok := runCDNOnly(t, list, "-")
	wantV4, wantV6, wantOK := wantRanges(list)
	if ok != wantOK {
		t.Fatalf("%q: cdn-only.sh ok=%v, want %v:\n%s", list, ok, wantOK, out)
	}
	if !ok {
		if out != "" {
			t.Fatalf("%q: refused, yet wrote:\n%s", list, out)
		}
		return ""
	}
	v4, v6 := ranges(t, out)
	if !slices.Equal(v4, wantV4) || !slices.Equal(v6, wantV6) {
		t.Fatalf("%q: sets %q and %q, want %q and %q", list, v4, v6, wantV4, wantV6)
	}
	return out
}

var cdnOnlyLists = []string{
	"173.245.48.0/20\n2400:cb00::/32\n",
	"173.245.48.0/20\n103.21.244.0/22",                  // Cloudflare's files end without a line break
	"173.245.48.0/20\r\n2400:cb00::/32\r\n",             // CRLF
	"# a comment\n\n  10.0.0.0/8  # trailing\n\t::/0\n", // blanks and comments
	"1.2.3.4\n2001:DB8::1\n",                            // addresses alone, upper-case hex
	"::\n1::\n::1\n1:2:3:4:5:6:7:8/128\n1:2:3:4:5:6:7::\n::2:3:4:5:6:7:8\n",
	"0.0.0.0/0\n255.255.255.255/32\n1.2.3.4/24\n", // host bits set: nft masks them
	"2400:cb00::/32\n",                            // IPv6 only
	"",                                            // nothing: refused
	"# only comments\n\n",
	"<html><body>502 Bad Gateway</body></html>\n", // a failed download
	"173.245.48.0/20\n<html>\n",
	"1.2.3.4/33\n", "256.1.1.1\n", "01.2.3.4\n", "1.2.3.4/08\n", "1.2.3\n", "1.2.3.4.5\n",
	"::/129\n", "1:2:3:4:5:6:7:8:9\n", "1::2::3\n", ":::\n", "1:2:3:4:5:6:7::8\n", "12345::\n", "1:\n", ":1\n",
	"::ffff:1.2.3.4\n", "fe80::1%eth0\n",
	"1.2.3.4; flush ruleset\n", "1.2.3.4 }\n", "1.2.3.4\x00\n", "1.2.\x003.4\n",
}

// TestCDNOnly runs cdn-only.sh on good lists and bad ones: it takes exactly
// what Go's parser takes as ranges, and refuses every list with anything
// else, writing nothing, so that a failed download cannot shut a CDN out.
func TestCDNOnly(t *testing.T) {
	for _, list := range cdnOnlyLists {
		checkCDNOnly(t, list)
	}
	cf, err := os.ReadFile(filepath.Join("firewall", "testdata", "cloudflare.txt"))
	if err != nil {
		t.Fatal(err)
	}
	v4, v6 := ranges(t, checkCDNOnly(t, string(cf)))
	if len(v4) != 15 || len(v6) != 7 {
		t.Fatalf("Cloudflare's lists: %d and %d ranges, want 15 and 7", len(v4), len(v6))
	}
}

// TestCDNOnlyPorts: -p names the ports, and takes only ports.
func TestCDNOnlyPorts(t *testing.T) {
	for _, tc := range []struct {
		ports, dport string // dport "" = refused
	}{
		{"", "{ 80, 443 }"},
		{"443", "{ 443 }"},
		{"80,443,8443", "{ 80, 443, 8443 }"},
		{"80, 443", "{ 80, 443 }"},
		{"0", ""}, {"65536", ""}, {"80,", ""}, {"http", ""}, {"80;443", ""}, {"80 } accept", ""},
	} {
		args := []string{"-"}
		if tc.ports != "" {
			args = []string{"-p", tc.ports, "-"}
		}
		out, ok := runCDNOnly(t, "10.0.0.0/8\n", args...)
		if ok != (tc.dport != "") || ok && !strings.Contains(out, "th dport "+tc.dport+" jump web") {
			t.Errorf("-p %q: ok=%v:\n%s", tc.ports, ok, out)
		}
	}
}

// TestCDNOnlyNft checks the rulesets with nft itself (nft -c: parsed and
// checked against the kernel, nothing applied), as root where nft is
// installed; CI applies one in a network namespace (.ci/cdnonly.sh).
func TestCDNOnlyNft(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and nft (apt-get install nftables)")
	}
	cf, err := os.ReadFile(filepath.Join("firewall", "testdata", "cloudflare.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, list := range append([]string{string(cf), string(cf) + "104.16.0.0/12\n"}, cdnOnlyLists...) {
		out, ok := runCDNOnly(t, list, "-p", "80,443,8443", "-")
		if !ok {
			continue
		}
		cmd := exec.Command("nft", "-c", "-f", "-")
		cmd.Stdin = strings.NewReader(out)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%q: nft -c: %v\n%s\n%s", list, err, msg, out)
		}
	}
}

// FuzzCDNOnly: whatever a download brings, cdn-only.sh takes exactly the
// lists Go's parser takes, and writes their ranges and nothing else.
func FuzzCDNOnly(f *testing.F) {
	for _, list := range cdnOnlyLists {
		f.Add(list)
	}
	f.Fuzz(func(t *testing.T, list string) {
		checkCDNOnly(t, list)
	})
}
