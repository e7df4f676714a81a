package config

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"ferry/internal/redact"
)

// The secrets the cases below hide in URLs, which no error or start line
// may show.
const (
	urlPassword = "pw-in-a-url-4821"
	queryValue  = "token-in-a-query-9173"
)

// TestErrorsHideURLSecrets sets every variable that takes a URL to values
// with a password and a query value, as bad and as good ones, and checks
// that neither the error nor the start line shows them.
func TestErrorsHideURLSecrets(t *testing.T) {
	dir := t.TempDir()
	secret := "://u:" + urlPassword + "@"
	q := "token=" + queryValue
	bad := []struct{ key, value string }{
		{"FERRY_EDGE_LISTEN", "tcp" + secret + ":80/chat"},
		{"FERRY_EDGE_LISTEN", "tcp://:80/chat?" + q},
		{"FERRY_EDGE_LISTEN", "tcp" + secret + "%zz:80/chat"},
		{"FERRY_EDGE_ORIGINS", "wss" + secret + "origin.example/t"},
		{"FERRY_EDGE_ORIGINS", "wss://origin.example/t?" + q},
		{"FERRY_EDGE_ORIGINS", "wss://origin.example/t?connect=bad&" + q},
		{"FERRY_EDGE_ORIGINS", "ftp" + secret + "origin.example/t?" + q},
		{"FERRY_EDGE_ORIGINS", "quic" + secret + "origin.example"},
		{"FERRY_EDGE_TUNNEL_LISTEN", "wss" + secret + ":8443/t"},
		{"FERRY_EDGE_TUNNEL_LISTEN", "wss://:8443/t?" + q},
		{"FERRY_EDGE_DECOY", "https" + secret + "/?" + q},
		{"FERRY_EDGE_DECOY", "ftp" + secret + "site.example/?" + q},
		{"FERRY_EDGE_DECOY", "https" + secret + "%zz/?" + q},
		{"FERRY_EDGE_ACME", "https" + secret + "acme.example/dir?" + q},
		{"FERRY_EDGE_ACME", "http" + secret + "acme.example/dir?" + q},
		{"FERRY_ORIGIN_LISTEN", "ws" + secret + ":8080/t"},
		{"FERRY_ORIGIN_LISTEN", "quic://:8443?" + q},
		{"FERRY_ORIGIN_EDGES", "ws" + secret + "edge.example/t"},
		{"FERRY_ORIGIN_EDGES", "ws://edge.example/t?" + q},
		{"FERRY_ORIGIN_DECOY", "https" + secret + "%zz/?" + q},
		{"FERRY_ORIGIN_DECOY", dir + "/missing" + secret + "?" + q},
		{"FERRY_ORIGIN_TARGETS", "chat=g.whatsapp.net:5222?" + q},
		{"FERRY_ORIGIN_TARGETS", "chat=" + secret + "g.whatsapp.net:5222"},
		// Not URLs, but a long value in the wrong place is cut.
		{"FERRY_LOG_LEVEL", "debug" + strings.Repeat("-", 40) + queryValue},
		{"FERRY_ADMIN", strings.Repeat("x", redact.MaxValue) + queryValue},
	}
	for _, tc := range bad {
		setenv(t, map[string]string{"FERRY_SECRET": goodSecret, "FERRY_EDGE_ORIGINS": "ws://o.example/t", tc.key: tc.value})
		var err error
		if strings.HasPrefix(tc.key, "FERRY_ORIGIN") {
			err = Load(&Origin{})
		} else {
			err = Load(&Edge{})
		}
		if err == nil {
			t.Errorf("%s=%s: no error", tc.key, tc.value)
			continue
		}
		if !strings.HasPrefix(err.Error(), tc.key+":") {
			t.Errorf("%s: %q does not name the variable", tc.key, err)
		}
		if strings.Contains(err.Error(), urlPassword) || strings.Contains(err.Error(), queryValue) {
			t.Errorf("%s: the error shows a URL's secret: %q", tc.key, err)
		}
	}

	good := map[string]string{
		"FERRY_SECRET":       goodSecret,
		"FERRY_EDGE_DECOY":   "https" + secret + "site.example/?" + q,
		"FERRY_ORIGIN_DECOY": "https" + secret + "site.example/?" + q,
		"FERRY_EDGE_ACME":    "https" + "://acme.example/dir?" + q,
		// ACME needs the names it is for.
		"FERRY_EDGE_PUBLIC_HOST": "proxy.example",
		"FERRY_EDGE_ORIGINS":     "wss://o.example/t?connect=192.0.2.1:443&sni=cdn.example",
	}
	setenv(t, good)
	var e Edge
	var o Origin
	if err := Load(&e); err != nil {
		t.Fatal(err)
	}
	if err := Load(&o); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []any{&e, &o} {
		var text, json bytes.Buffer
		slog.New(slog.NewTextHandler(&text, nil)).Info("start", slog.Group("config", Attrs(spec)...))
		slog.New(slog.NewJSONHandler(&json, nil)).Info("start", slog.Group("config", Attrs(spec)...))
		for _, line := range []string{text.String(), json.String()} {
			if strings.Contains(line, urlPassword) || strings.Contains(line, queryValue) || strings.Contains(line, goodSecret) {
				t.Errorf("the start line shows a secret: %s", line)
			}
			if !strings.Contains(line, "u:xxxxx@site.example") {
				t.Errorf("the start line does not show the decoy's masked URL: %s", line)
			}
		}
		if spec == &e && !strings.Contains(text.String(), "connect=192.0.2.1") {
			t.Errorf("the start line hides ferry's own options: %s", text.String())
		}
	}
}
