package link

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"ferry/config"
)

func listeners(t *testing.T, spec string) []config.Listener {
	t.Helper()
	var ls config.Listeners
	if err := ls.Decode(spec); err != nil {
		t.Fatal(err)
	}
	return ls
}

func TestURL(t *testing.T) {
	for _, tc := range []struct{ listen, want string }{
		{"tls://:443/chat,tcp://:80/chat80,tcp://:5222/chat,tcp://:587/media,tcp://:7777/media,proxy+tls://:8443/chat",
			"https://wa.me/proxy?host=proxy.example&chatPort=443&mediaPort=587&chatTLS=true"},
		{"tcp://:5222/chat,tcp://:7777/media",
			"https://wa.me/proxy?host=proxy.example&chatPort=5222&mediaPort=7777&chatTLS=false"},
		// No media listener: the tls listener passes media through by its
		// server name.
		{"tcp://:5222/chat,tls://[::]:4443/chat",
			"https://wa.me/proxy?host=proxy.example&chatPort=4443&mediaPort=4443&chatTLS=true"},
		{"tls://:443/chat,tcp://:5222/chat",
			"https://wa.me/proxy?host=proxy.example&chatPort=443&mediaPort=443&chatTLS=true"},
		// Unless it relays as it comes.
		{"tcp://:5222/chat,tls://:443/chat?decoy=off",
			"https://wa.me/proxy?host=proxy.example&chatPort=443&mediaPort=587&chatTLS=true"},
		{"proxy+tls://:8443/chat,proxy+tcp://:8587/media",
			"https://wa.me/proxy?host=proxy.example&chatPort=8443&mediaPort=8587&chatTLS=true"},
	} {
		if got := URL("proxy.example", PortsOf(listeners(t, tc.listen))); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.listen, got, tc.want)
		}
	}
}

// TestTerminal reads the drawn code back, module by module, and compares it
// with the encoder's.
func TestTerminal(t *testing.T) {
	const s = "https://wa.me/proxy?host=proxy.example&chatPort=443&mediaPort=587&chatTLS=true"
	var buf bytes.Buffer
	if err := WriteTerminal(&buf, s); err != nil {
		t.Fatal(err)
	}
	code, err := QR(s)
	if err != nil {
		t.Fatal(err)
	}
	cell := regexp.MustCompile(`\x1b\[(\d+);(\d+)m▀`)
	var rows [][]bool
	for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		var top, bottom []bool
		for _, m := range cell.FindAllStringSubmatch(line, -1) {
			top = append(top, m[1] == "30")
			bottom = append(bottom, m[2] == "40")
		}
		rows = append(rows, top, bottom)
	}
	const quiet = 2
	for y := -quiet; y < code.Size+quiet; y++ {
		for x := -quiet; x < code.Size+quiet; x++ {
			want := x >= 0 && y >= 0 && x < code.Size && y < code.Size && code.Black(x, y)
			if got := rows[y+quiet][x+quiet]; got != want {
				t.Fatalf("module (%d,%d) drawn black=%v, want %v", x, y, got, want)
			}
		}
	}
}

// TestPlain checks that the plain QR code has no escape sequence and draws
// exactly the code's modules, two rows a line, inside the quiet zone.
func TestPlain(t *testing.T) {
	const s = "https://wa.me/proxy?host=2001%3Adb8%3A%3A1&chatPort=443&mediaPort=587&chatTLS=true"
	var b bytes.Buffer
	if err := WritePlain(&b, s); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "\x1b") {
		t.Fatal("escape sequences in the plain QR code")
	}
	c, err := QR(s)
	if err != nil {
		t.Fatal(err)
	}
	black := modules(c)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	n := c.Size + 2*quiet
	if len(lines) != (n+1)/2 {
		t.Fatalf("%d lines, want %d", len(lines), (n+1)/2)
	}
	for i, line := range lines {
		cells := []rune(line)
		if len(cells) != n {
			t.Fatalf("line %d: %d characters, want %d", i, len(cells), n)
		}
		for x, r := range cells {
			top, bottom := black(x, 2*i), black(x, 2*i+1)
			want := map[[2]bool]rune{{true, true}: '█', {true, false}: '▀', {false, true}: '▄', {false, false}: ' '}[[2]bool{top, bottom}]
			if r != want {
				t.Fatalf("line %d, column %d: %q, want %q", i, x, r, want)
			}
		}
	}
}
