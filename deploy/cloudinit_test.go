package deploy

import (
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// cloudConfig is the part of deploy/cloud-init/edge.yaml these tests read.
type cloudConfig struct {
	WriteFiles []struct {
		Path        string `json:"path"`
		Permissions string `json:"permissions"`
		Content     string `json:"content"`
	} `json:"write_files"`
	Runcmd []string `json:"runcmd"`
}

// TestCloudInit checks that cloud-init installs the very unit of
// deploy/systemd, keeps the secret's file to root, checks the archive
// against its SHA256SUMS line before installing it, and builds nothing.
func TestCloudInit(t *testing.T) {
	data, err := os.ReadFile("cloud-init/edge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "#cloud-config\n") {
		t.Error("edge.yaml does not start with #cloud-config")
	}
	var cc cloudConfig
	if err := yaml.UnmarshalStrict(data, &cc); err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile("systemd/ferry-edge.service")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, f := range cc.WriteFiles {
		files[f.Path] = f.Content
		if strings.Contains(f.Path, "ferry") && strings.HasPrefix(f.Path, "/etc/ferry/") && f.Permissions != "0600" {
			t.Errorf("%s: permissions %q, want 0600 (it holds the secret)", f.Path, f.Permissions)
		}
	}
	if got := files["/etc/systemd/system/ferry-edge.service"]; got != string(unit) {
		t.Errorf("the unit in cloud-init/edge.yaml is not systemd/ferry-edge.service verbatim")
	}
	script := files["/root/install-ferry.sh"]
	check, install := strings.Index(script, "sha256sum -c"), strings.Index(script, "install -m 755")
	if check < 0 || install < 0 || check > install {
		t.Errorf("install-ferry.sh does not check the archive's hash before installing it:\n%s", script)
	}
	for _, bad := range []string{"go install", "go build", "go.dev", "github.com", "ghcr.io"} {
		if strings.Contains(string(data), bad) {
			t.Errorf("edge.yaml says %q: it installs from a release archive only", bad)
		}
	}
}
