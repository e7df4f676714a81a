package main

import (
	"io"
	"net"
	"strings"
	"testing"

	"ferry/internal/fake"
	"ferry/internal/headless"
)

// TestStatsPage runs an edge and an origin with their admin endpoints,
// relays a client from clientIP, and checks each role's stats page: the
// client counted, the listeners' ports and what they carry, the tunnel's
// transport and sessions, and neither the tunnel's path (which keeps it
// from strangers), the secret nor the client's address; the edge's page
// is then rendered in headless Chromium, where there is one.
func TestStatsPage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := build(t)
	echo := fake.Start(t, fake.Echo)
	const path = "/tunnel-path-8813"
	originAddr, edgeAddr, edgeAdmin, originAdmin := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	common := []string{"FERRY_SECRET=" + secret}
	org := start(t, bin, append(common, "FERRY_ORIGIN_LISTEN=ws://"+originAddr+path, "FERRY_ORIGIN_TARGETS=chat="+echo.Addr(),
		"FERRY_ADMIN="+originAdmin), "ferry origin starting", "origin")
	org.discardLines()
	edg := start(t, bin, append(common, "FERRY_EDGE_LISTEN=tcp://"+edgeAddr+"/chat?decoy=off", "FERRY_EDGE_ORIGINS=ws://"+originAddr+path,
		"FERRY_EDGE_PUBLIC_HOST=proxy.example", "FERRY_ADMIN="+edgeAdmin), "", "edge")
	edg.waitFor(t, "tunnel up")
	edg.discardLines()

	c, err := clientDialer.Dial("tcp", edgeAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "hello")
	if buf := make([]byte, 5); func() error { _, err := io.ReadFull(c, buf); return err }() != nil || string(buf) != "hello" {
		t.Fatalf("echo through the tunnel: %q", buf)
	}

	_, originPort, _ := net.SplitHostPort(originAddr)
	_, edgePort, _ := net.SplitHostPort(edgeAddr)
	forbidden := []string{path, secret, clientIP}
	check := func(role, body string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s's stats page lacks %q", role, w)
			}
		}
		for _, f := range forbidden {
			if strings.Contains(body, f) {
				t.Errorf("%s's stats page holds %q", role, f)
			}
		}
	}
	code, body := httpGet(t, "http://"+edgeAdmin+"/")
	if code != 200 {
		t.Fatalf("edge's stats page: %d", code)
	}
	check("edge", body, `id="phones">1<`, "phone connected now", "ferry edge", "pill ok\">ready", ">"+edgePort+"<", "chat, no web site",
		">"+originAddr+"<", "WebSocket", " up</span>", "24 h ago", "Traffic a minute", "wa.me/proxy?host=proxy.example", `href="/metrics"`)
	if strings.Contains(body, "none up") {
		t.Error("the edge's page says no session is up")
	}
	code, body = httpGet(t, "http://"+originAdmin+"/")
	if code != 200 {
		t.Fatalf("origin's stats page: %d", code)
	}
	check("origin", body, `id="phones">1<`, "ferry origin", ">"+originPort+"<", "tunnel, WebSocket", ">edges on port "+originPort+"<", " up</span>", "Connections through edges")
	if _, metrics := httpGet(t, "http://"+edgeAdmin+"/metrics"); !strings.Contains(metrics, "ferry_connections_active") {
		t.Error("/metrics is gone")
	}

	dom := headless.DOM(t, "http://"+edgeAdmin+"/", 412)
	check("edge (rendered)", dom, `id="phones">1<`, "24 h ago", ">"+edgePort+"<", "WebSocket", " up</span>")
}
