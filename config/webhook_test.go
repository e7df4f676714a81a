package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestAlertWebhook(t *testing.T) {
	for _, bad := range []string{
		"http://hooks.example.com/services/S3KRIT",
		"hooks.example.com/services/S3KRIT",
		"https:///services/S3KRIT",
		"https://:443/services/S3KRIT",
		"https://hooks.example.com/S3KRIT#frag",
		"https:S3KRIT",
		"ftp://hooks.example.com/S3KRIT",
		"https://hooks.example.com/%zzS3KRIT",
	} {
		setenv(t, map[string]string{"FERRY_SECRET": goodSecret, "FERRY_ALERT_WEBHOOK": bad})
		err := Load(&Origin{})
		var cerr *Error
		if !errors.As(err, &cerr) || cerr.Var != "FERRY_ALERT_WEBHOOK" || !strings.Contains(err.Error(), "https://") {
			t.Errorf("FERRY_ALERT_WEBHOOK=%q: %v, want an error naming the variable and its form", bad, err)
			continue
		}
		if strings.Contains(err.Error(), "S3KRIT") {
			t.Errorf("FERRY_ALERT_WEBHOOK=%q: the error quotes the path: %v", bad, err)
		}
	}

	const good = "https://user:pa55word@hooks.example.com:8443/services/T0/B0/S3KRIT?token=S3KRIT"
	setenv(t, map[string]string{"FERRY_SECRET": goodSecret, "FERRY_EDGE_ORIGINS": "ws://o.example/t", "FERRY_ALERT_WEBHOOK": good})
	var e Edge
	if err := Load(&e); err != nil {
		t.Fatal(err)
	}
	if e.AlertWebhook.URL == nil || e.AlertWebhook.URL.String() != good {
		t.Fatalf("webhook %v, want %s", e.AlertWebhook.URL, good)
	}
	// The start's log line and any %v show the host only.
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("start", Attrs(&e)...)
	if s := b.String() + fmt.Sprint(e.AlertWebhook) + fmt.Sprintf("%+v", e.Common); strings.Contains(s, "S3KRIT") || strings.Contains(s, "pa55word") {
		t.Errorf("the webhook's secrets are shown: %s", s)
	} else if !strings.Contains(b.String(), "FERRY_ALERT_WEBHOOK=https://xxxxx@hooks.example.com:8443/xxxxx") {
		t.Errorf("start line %s", b.String())
	}

	setenv(t, map[string]string{"FERRY_SECRET": goodSecret, "FERRY_EDGE_ORIGINS": "ws://o.example/t"})
	e = Edge{}
	if err := Load(&e); err != nil || e.AlertWebhook.URL != nil {
		t.Errorf("unset: %v, %v; want off", err, e.AlertWebhook.URL)
	}
}
