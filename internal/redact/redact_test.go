package redact

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://user:hunter2@example.com/path?k=v", "https://user:xxxxx@example.com/path?k=xxxxx"},
		{"https://token@example.com/", "https://xxxxx@example.com/"},
		{"https://example.com/a?x=1&y=&z#frag", "https://example.com/a?x=xxxxx&y=&xxxxx#xxxxx"},
		{"wss://h:443/t?connect=1.2.3.4:443&sni=a.b&token=s3cret", "wss://h:443/t?connect=1.2.3.4:443&sni=a.b&token=xxxxx"},
		{"tcp://:80/chat?decoy=off", "tcp://:80/chat?decoy=off"},
		{"https://u:p@a/?q=1,wss://v:w@b/x", "https://u:xxxxx@a/?q=xxxxx,wss://v:xxxxx@b/x"},
		// Malformed: still masked.
		{"ht tp://u:p%zz@a b/?q=%zz", "ht tp://u:xxxxx@a b/?q=xxxxx"},
		{"https://u:p@host", "https://u:xxxxx@host"},
		{"https://u:p@host?k=v", "https://u:xxxxx@host?k=xxxxx"},
		{"https://u:p@@host/", "https://u:xxxxx@host/"},
		{"not a url: k=v", "not a url: k=v"}, {"chat=h:1?proxy=v1&token=t", "chat=h:1?proxy=v1&token=xxxxx"},
		{"", ""},
	} {
		if got := URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestValue(t *testing.T) {
	long := strings.Repeat("a", MaxValue)
	if got := fmt.Sprintf("%q", Value(long)); got != `"`+long[:cutTo]+`…"` {
		t.Errorf("%%q of a long value = %s", got)
	}
	short := strings.Repeat("é", MaxValue-1)
	if got := Value(short).String(); got != short {
		t.Errorf("a value of %d characters was cut: %q", MaxValue-1, got)
	}
	if got := fmt.Sprintf("%q is bad", Value("https://u:pw@h/?t=secret")); got != `"https://u:xxxxx@h/?t=xxxxx" is bad` {
		t.Errorf("got %s", got)
	}
}

func TestAddr(t *testing.T) {
	c4 := netip.MustParseAddr("127.0.0.2")
	c6 := netip.MustParseAddr("2001:db8::1")
	mapped := netip.MustParseAddr("::ffff:127.0.0.2")
	for _, tc := range []struct {
		in     string
		client netip.Addr
		want   string
	}{
		{"read tcp 127.0.0.1:443->127.0.0.2:5555: connection reset by peer", c4, "read tcp 127.0.0.1:443->client: connection reset by peer"},
		{"from 127.0.0.2 and 127.0.0.25:1 and 127.0.0.2.", c4, "from client and 127.0.0.25:1 and client."},
		{"write tcp [::1]:443->[2001:db8::1]:5555: broken pipe", c6, "write tcp [::1]:443->client: broken pipe"},
		{"2001:db8::12 is not 2001:db8::1", c6, "2001:db8::12 is not client"},
		{"read tcp 127.0.0.1:443->127.0.0.2:5555: x", mapped, "read tcp 127.0.0.1:443->client: x"},
		{"dial tcp 10.1.2.3:5222: refused", c4, "dial tcp 10.1.2.3:5222: refused"},
		{"http: TLS handshake error from 127.0.0.2:5555: EOF", netip.Addr{}, "http: TLS handshake error from client: EOF"},
		{"from [2001:db8::1]:5555 and 1.2.3.4", netip.Addr{}, "from client and client"},
	} {
		if got := Addr(tc.in, tc.client); got != tc.want {
			t.Errorf("Addr(%q, %v) = %q, want %q", tc.in, tc.client, got, tc.want)
		}
	}
	err := fmt.Errorf("hello: %w", errors.New("read tcp 127.0.0.1:1->127.0.0.2:2: EOF"))
	if got := Err(err, false, c4).Value.String(); got != "hello: read tcp 127.0.0.1:1->client: EOF" {
		t.Errorf("Err = %q", got)
	}
	if got := Err(err, false, netip.MustParseAddr("10.0.0.1"), c4).Value.String(); got != "hello: read tcp 127.0.0.1:1->client: EOF" {
		t.Errorf("Err with two addresses = %q", got)
	}
	if got := Err(err, false).Value.String(); got != "hello: read tcp client->client: EOF" {
		t.Errorf("Err with no address = %q", got)
	}
	if got := Err(err, true, c4).Value.String(); !strings.Contains(got, "127.0.0.2") {
		t.Errorf("Err with keep = %q", got)
	}
}
