package dnsupdate

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"ferry/config"
)

const goodSecret = "7/BUDc8It9x23PpTAlv/VBvI8mHqq338UFj/z1hqFlg="

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	badFile := filepath.Join(dir, "bad.key")
	os.WriteFile(badFile, []byte(`key "k" { algorithm hmac-sha256; secret "`+goodSecret+`" };`), 0o600)
	for _, tc := range []struct {
		name     string
		provider string
		env      map[string]string
		wantVar  string
		want     string
	}{
		{"no server", "rfc2136", map[string]string{VarTSIG: "k:hmac-sha256:" + goodSecret}, VarServer, "not set"},
		{"server port", "rfc2136", map[string]string{VarServer: "127.0.0.1:99999", VarTSIG: "k:hmac-sha256:" + goodSecret}, VarServer, `port "99999"`},
		{"server host", "rfc2136", map[string]string{VarServer: "not a host:53", VarTSIG: "k:hmac-sha256:" + goodSecret}, VarServer, "neither an IP address nor a host name"},
		{"transport", "rfc2136", map[string]string{VarServer: "127.0.0.1", VarTransport: "tls", VarTSIG: "k:hmac-sha256:" + goodSecret}, VarTransport, `"tls" is neither`},
		{"zone", "rfc2136", map[string]string{VarServer: "127.0.0.1", VarZone: "a..b", VarTSIG: "k:hmac-sha256:" + goodSecret}, VarZone, "not a domain name"},
		{"no key", "rfc2136", map[string]string{VarServer: "127.0.0.1"}, VarTSIGFile, "must be signed"},
		{"two keys", "rfc2136", map[string]string{VarServer: "127.0.0.1", VarTSIG: "k:hmac-sha256:" + goodSecret, VarTSIGFile: badFile}, VarTSIG, "set one of them"},
		{"two parts", "rfc2136", map[string]string{VarServer: "127.0.0.1", VarTSIG: "k:" + goodSecret}, VarTSIG, "three parts"},
		{"algorithm", "rfc2136", map[string]string{VarServer: "127.0.0.1", VarTSIG: "k:hmac-sha3:" + goodSecret}, VarTSIG, `algorithm "hmac-sha3" is not one of`},
		{"secret", "rfc2136", map[string]string{VarServer: "127.0.0.1", VarTSIG: "k:hmac-sha256:not base64!"}, VarTSIG, "not base64"},
		{"key file missing", "rfc2136", map[string]string{VarServer: "127.0.0.1", VarTSIGFile: filepath.Join(dir, "none")}, VarTSIGFile, "no such file"},
		{"key file syntax", "rfc2136", map[string]string{VarServer: "127.0.0.1", VarTSIGFile: badFile}, VarTSIGFile, "want ; after"},
		{"no token", "cloudflare", map[string]string{}, VarCloudflareToken, "not set, nor CLOUDFLARE_API_TOKEN"},
		{"token newline", "cloudflare", map[string]string{VarCloudflareToken: "abcdefghijklmnopqrstuvwxyz\n"}, VarCloudflareToken, "line break"},
		{"zone ID", "cloudflare", map[string]string{VarCloudflareToken: "tok", VarCloudflareZoneID: "example.com"}, VarCloudflareZoneID, "32 hex digits"},
		{"API", "cloudflare", map[string]string{VarCloudflareToken: "tok", VarCloudflareAPI: "https://user:hunter2@api.example/"}, VarCloudflareAPI, "without a password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := New(tc.provider, env(tc.env))
			if u != nil {
				t.Errorf("New returned an Updater with the error")
			}
			var ve *VarError
			if !errors.As(err, &ve) || ve.Var != tc.wantVar {
				t.Fatalf("New = %v, want an error naming %s", err, tc.wantVar)
			}
			if !strings.HasPrefix(err.Error(), tc.wantVar+": ") || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "(want ") {
				t.Errorf("error %q: want it to begin with %s, say %q and give the form", err, tc.wantVar, tc.want)
			}
			for _, s := range []string{goodSecret, "hunter2", "abcdefghijklmnopqrstuvwxyz"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q holds a secret", err)
				}
			}
		})
	}
	if _, err := New("route53", env(nil)); err == nil || !strings.Contains(err.Error(), "want rfc2136 or cloudflare") {
		t.Errorf("New(route53) = %v", err)
	}
}

func TestNewDefaults(t *testing.T) {
	u, err := newRFC2136(env(map[string]string{VarServer: "[2001:db8::53]", VarTSIG: "hmac-sha512:Ferry.Key:" + goodSecret}))
	if err != nil {
		t.Fatal(err)
	}
	if u.server != "[2001:db8::53]:53" || u.transport != "tcp" || u.zone != "" || u.key.name != "ferry.key." || u.key.algorithm != "hmac-sha512." {
		t.Errorf("got server %s, transport %s, zone %q, key %v", u.server, u.transport, u.zone, u.key)
	}
	// The fallback name of the token, and the default API.
	c, err := newCloudflare(env(map[string]string{"CLOUDFLARE_API_TOKEN": "tok"}))
	if err != nil || c.zoneID != "" || c.zoneName != "" {
		t.Errorf("newCloudflare = %+v, %v", c, err)
	}
}

func TestParseKeyFile(t *testing.T) {
	for _, text := range []string{
		"key \"ferry-update\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + goodSecret + "\";\n};\n",
		"# made by tsig-keygen\n// another comment\n/* and\nanother */ key ferry-update{algorithm \"hmac-sha256\";secret \"" + goodSecret + "\";};",
	} {
		k, err := parseKeyFile(text)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if k.name != "ferry-update." || k.algorithm != "hmac-sha256." || k.secret != goodSecret {
			t.Errorf("%q: got %v", text, k)
		}
	}
	for _, text := range []string{
		"",
		`key "a" { algorithm hmac-sha256; secret "` + goodSecret + `"; }; key "b" { algorithm hmac-sha256; secret "` + goodSecret + `"; };`,
		`key "a" { algorithm hmac-sha256; };`,
		`key "a" { algorithm hmac-sha256; secret "` + goodSecret + `"; `,
		`options { };`,
		`key "a" { algorithm hmac-sha256; secret "` + goodSecret,
	} {
		if _, err := parseKeyFile(text); err == nil {
			t.Errorf("%q: parsed", text)
		} else if strings.Contains(err.Error(), goodSecret) {
			t.Errorf("%q: error %q holds the secret", text, err)
		}
	}
}

// TestKeygen parses what the installed tsig-keygen writes, when there is
// one.
func TestKeygen(t *testing.T) {
	bin, err := exec.LookPath("tsig-keygen")
	if err != nil {
		bin = "/usr/sbin/tsig-keygen"
	}
	for _, alg := range []string{"hmac-sha256", "hmac-sha512"} {
		out, err := exec.Command(bin, "-a", alg, "ferry-update").Output()
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("tsig-keygen: %v; CI installs bind9", err)
			}
			t.Skipf("tsig-keygen: %v (Debian: apt-get install bind9)", err)
		}
		k, err := parseKeyFile(string(out))
		if err != nil || k.name != "ferry-update." || k.algorithm != alg+"." {
			t.Errorf("tsig-keygen -a %s: got %v, %v", alg, k, err)
		}
	}
}

// TestHelpListsVars checks that config.DNS, which ferry help lists, names
// exactly the variables this package reads.
func TestHelpListsVars(t *testing.T) {
	var got []string
	for _, v := range config.Vars(&config.DNS{}) {
		got = append(got, v.Key)
	}
	want := []string{VarServer, VarTransport, VarZone, VarTSIG, VarTSIGFile, VarCloudflareToken, VarCloudflareZoneID, VarCloudflareAPI}
	slices.Sort(got)
	slices.Sort(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config.DNS lists %q, want %q", got, want)
	}
}
