package main

import (
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/alert"
)

// whatsApp is a fake WhatsApp server on loopback that can stop answering
// (its port then refuses) and come back on the same port.
type whatsApp struct {
	addr string
	mu   sync.Mutex
	ln   net.Listener
	wg   sync.WaitGroup
}

func startWhatsApp(t *testing.T) *whatsApp {
	w := &whatsApp{addr: "127.0.0.1:0"}
	w.up(t)
	w.addr = w.ln.Addr().String()
	t.Cleanup(w.down)
	return w
}

// up listens again, and accepts (and closes) connections until down.
func (w *whatsApp) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", w.addr)
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.ln = ln
	w.mu.Unlock()
	w.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	})
}

func (w *whatsApp) down() {
	w.mu.Lock()
	w.ln.Close()
	w.mu.Unlock()
	w.wg.Wait()
}

// TestReadinessFollowsWhatsApp runs an origin with an edge, and a
// standalone, all three with admin endpoints, and a fake WhatsApp that
// stops answering: within 35 s each is not ready and says why (the origin
// and the standalone naming the route, the edge that its origin cannot
// reach WhatsApp), with one WARN each, and each is ready again soon after
// WhatsApp returns, with one line each; the origin's webhook gets one event
// each way, and the stats pages say so too.
func TestReadinessFollowsWhatsApp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and waits 30 s")
	}
	t.Parallel()
	bin := build(t)
	wa := startWhatsApp(t)
	originAddr := freeAddr(t)
	common := []string{"FERRY_SECRET=" + secret}
	admins := map[string]string{"origin": freeAddr(t), "edge": freeAddr(t), "standalone": freeAddr(t)}
	events := make(chan alert.RouteEvent, 4)
	hook := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e alert.RouteEvent
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			t.Errorf("webhook: %v", err)
		}
		events <- e
	}))
	defer hook.Close()
	// The webhook must be HTTPS; the origin trusts its certificate alone.
	roots := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hook.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	org := start(t, bin, append(common, "FERRY_ORIGIN_LISTEN=ws://"+originAddr+"/t", "FERRY_ORIGIN_TARGETS=chat="+wa.addr,
		"FERRY_ADMIN="+admins["origin"], "FERRY_ALERT_WEBHOOK="+hook.URL+"/secret-path", "SSL_CERT_FILE="+roots), "ferry origin starting", "origin")
	// One session, so that its one line tells the edge's state.
	edg := start(t, bin, append(common, "FERRY_EDGE_LISTEN=tcp://"+freeAddr(t)+"/chat?decoy=off", "FERRY_EDGE_ORIGINS=ws://"+originAddr+"/t",
		"FERRY_EDGE_POOL=1", "FERRY_ADMIN="+admins["edge"]), "ferry edge starting", "edge")
	std := start(t, bin, []string{"FERRY_EDGE_LISTEN=tcp://" + freeAddr(t) + "/chat?decoy=off", "FERRY_ORIGIN_TARGETS=chat=" + wa.addr,
		"FERRY_ADMIN=" + admins["standalone"]}, "ferry standalone starting", "standalone")
	edg.waitFor(t, "tunnel up")

	readyz := func(role string) (int, string) {
		t.Helper()
		return httpGet(t, "http://"+admins[role]+"/readyz")
	}
	for role := range admins {
		if code, body := readyz(role); code != http.StatusOK {
			t.Fatalf("%s /readyz with WhatsApp up: %d %q", role, code, body)
		}
	}

	wa.down()
	lost := time.Now()
	var wg sync.WaitGroup
	for _, w := range []struct {
		role, line, body, page string
		p                      *proc
	}{
		{"origin", "route cannot reach WhatsApp", "route chat cannot reach WhatsApp", "not reachable for", org},
		{"standalone", "route cannot reach WhatsApp", "route chat cannot reach WhatsApp", "not reachable for", std},
		{"edge", "the origin cannot reach WhatsApp", "the origin cannot reach WhatsApp (chat)", "the origin cannot reach WhatsApp (chat)", edg},
	} {
		wg.Go(func() {
			line := w.p.waitFor(t, w.line)
			took := time.Since(lost)
			t.Logf("%s: not ready %.1f s after WhatsApp stopped answering", w.role, took.Seconds())
			if took > 35*time.Second {
				t.Errorf("%s: not ready after %v, want within 35 s", w.role, took)
			}
			if !strings.Contains(line, "level=WARN") || (w.role != "edge" && !strings.Contains(line, "route=chat")) {
				t.Errorf("%s: %s", w.role, line)
			}
			if code, body := readyz(w.role); code != http.StatusServiceUnavailable || !strings.Contains(body, w.body) {
				t.Errorf("%s /readyz: %d %q, want 503 %q", w.role, code, body, w.body)
			}
			if _, page := httpGet(t, "http://"+admins[w.role]+"/"); !strings.Contains(page, w.page) {
				t.Errorf("%s stats page does not say %q:\n%s", w.role, w.page, page)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if e := <-events; e.Event != "whatsapp_unreachable" || e.Role != "origin" || e.Route != "chat" || !strings.Contains(e.Error, wa.addr) || e.Since.IsZero() {
		t.Errorf("webhook: %+v, want whatsapp_unreachable of chat", e)
	}

	wa.up(t)
	back := time.Now()
	for _, w := range []struct {
		role, line string
		p          *proc
	}{
		{"origin", "route reaches WhatsApp again", org},
		{"standalone", "route reaches WhatsApp again", std},
		{"edge", "the origin reaches WhatsApp again", edg},
	} {
		wg.Go(func() {
			// Nothing else comes first: one WARN while down, however long.
			line := w.p.waitFor(t, "level=")
			if !strings.Contains(line, w.line) {
				t.Errorf("%s: %s, want %q next", w.role, line, w.line)
				return
			}
			t.Logf("%s: ready %.1f s after WhatsApp returned", w.role, time.Since(back).Seconds())
			if code, body := readyz(w.role); code != http.StatusOK {
				t.Errorf("%s /readyz after WhatsApp returned: %d %q", w.role, code, body)
			}
			if _, page := httpGet(t, "http://"+admins[w.role]+"/"); strings.Contains(page, "cannot reach") || strings.Contains(page, "not reachable") {
				t.Errorf("%s stats page still says WhatsApp is out of reach", w.role)
			}
		})
	}
	wg.Wait()
	if e := <-events; e.Event != "whatsapp_reachable" || e.Route != "chat" || e.Error != "" || !e.Since.IsZero() {
		t.Errorf("webhook: %+v, want whatsapp_reachable of chat", e)
	}
	select {
	case e := <-events:
		t.Errorf("webhook: one more event: %+v", e)
	default:
	}
}
