package deploy

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestPrometheusRules checks prometheus/ferry.rules.yml and runs its unit
// tests with promtool (Debian's prometheus package). Without promtool it
// skips, but not in CI (CI set), where .ci/run installs it.
func TestPrometheusRules(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed (apt-get install prometheus)")
		}
		t.Skip("promtool is not installed (apt-get install prometheus)")
	}
	for _, args := range [][]string{
		{"check", "rules", "ferry.rules.yml"},
		{"test", "rules", "ferry.rules.test.yml"},
	} {
		cmd := exec.Command("promtool", args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestPrometheusRulesTested keeps one unit test per alert: every alert of
// the rules file is named by an alert_rule_test.
func TestPrometheusRulesTested(t *testing.T) {
	rules, err := os.ReadFile("prometheus/ferry.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("prometheus/ferry.rules.test.yml")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(rules), "\n") {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "- alert: ")
		if !ok {
			continue
		}
		n++
		if !strings.Contains(string(tests), "alertname: "+name+"\n") {
			t.Errorf("alert %s has no alert_rule_test", name)
		}
	}
	if n < 4 {
		t.Errorf("%d alerts, want block suspected, tunnel down, WhatsApp unreachable and certificate expiry", n)
	}
}
