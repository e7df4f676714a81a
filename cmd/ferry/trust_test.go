package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"ferry/internal/fake"
)

// The trust test runs edge and origin in a network namespace of its own,
// whose loopback also holds 198.51.100.1 (TEST-NET-2, not a private range):
// a sender there is no load balancer of FERRY_EDGE_PROXY_FROM's default,
// and its PROXY header must not be believed. The test binary runs itself
// inside it, as the media test does.
const untrusted = "198.51.100.1"

func TestProxyFromNamespace(t *testing.T) {
	inNamespace(t, "TestProxyFromNamespace", trustInNamespace, func(name string) {
		ipCmd(t, "-n", name, "addr", "add", untrusted+"/32", "dev", "lo")
	})
}

// trustInNamespace runs inside the namespace: an origin that sends PROXY v1
// headers to a chat server, so that the chat server learns which address
// the edge believed, and an edge with a proxy+tcp listener on every address
// and the default FERRY_EDGE_PROXY_FROM.
func trustInNamespace(t *testing.T) {
	bin := os.Getenv(netnsBin)
	chatFirst := make(chan string, 10)
	chat := fake.Start(t, func(c net.Conn) {
		line, _ := bufio.NewReader(c).ReadString('\n')
		if line != "" { // not the origin's probe, which sends nothing
			chatFirst <- line
		}
	})
	originAddr := freeAddr(t)
	_, port, _ := net.SplitHostPort(freeAddr(t))
	common := []string{"FERRY_SECRET=" + secret, "FERRY_ADMIN="}
	start(t, bin, append(common, "FERRY_ORIGIN_LISTEN=ws://"+originAddr+"/t", "FERRY_ORIGIN_PROXY_PROTOCOL=v1",
		"FERRY_ORIGIN_TARGETS=chat="+chat.Addr()),
		"ferry origin starting", "origin")
	edg := start(t, bin, append(common, "FERRY_EDGE_ORIGINS=ws://"+originAddr+"/t",
		"FERRY_EDGE_LISTEN=proxy+tcp://:"+port+"/chat"),
		"ferry edge starting", "edge")
	edg.waitFor(t, "tunnel up")

	dial := func(from string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", net.JoinHostPort(from, port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	const header = "PROXY TCP4 203.0.113.7 127.0.0.1 5555 8222\r\n"

	// From loopback, a load balancer's place: the header is believed.
	c := dial("127.0.0.1")
	io.WriteString(c, header+string(fake.OpeningWeb))
	if line := <-chatFirst; !strings.HasPrefix(line, "PROXY TCP4 203.0.113.7 ") {
		t.Errorf("trusted sender: chat target got %q, want the header's 203.0.113.7", line)
	}

	// From 198.51.100.1, the header is bytes of a client that is not
	// WhatsApp: the web site answers them.
	c = dial(untrusted)
	io.WriteString(c, header+string(fake.OpeningWeb))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("untrusted sender's PROXY header: no HTTP answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("untrusted sender's PROXY header: HTTP %d, want the web site's 400", resp.StatusCode)
	}

	// Without one, it is a client as itself; the chat target's next line
	// is this one's, so the header above reached no target.
	c = dial(untrusted)
	c.Write(fake.OpeningWeb)
	if line := <-chatFirst; !strings.HasPrefix(line, "PROXY TCP4 "+untrusted+" ") {
		t.Errorf("untrusted sender without a header: chat target got %q, want its own address %s", line, untrusted)
	}
}
