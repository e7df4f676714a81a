package install

import (
	"reflect"
	"strings"
	"testing"
)

func TestEnvRoundTrip(t *testing.T) {
	file, err := ParseEnv([]byte("# c\nFERRY_SECRET=abc+/=\nexport FERRY_GRACE=\"30s\"\nFERRY_EDGE_DECOY='a b'\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Env{"FERRY_SECRET": "abc+/=", "FERRY_GRACE": "30s", "FERRY_EDGE_DECOY": "a b"}
	if !reflect.DeepEqual(file, want) {
		t.Fatalf("parsed %v", file)
	}
	merged := Merge(file, FromEnviron([]string{"FERRY_GRACE=5s", "HOME=/root", "PATH=/bin", "FERRY_DNS_TSIG=k:hmac-sha256:c2VjcmV0"}))
	if merged["FERRY_GRACE"] != "5s" || merged["HOME"] != "" || merged["FERRY_DNS_TSIG"] != "" {
		t.Errorf("the operator's variables do not win, or non-FERRY ones or -dns's credentials got in: %v", merged)
	}
	merged["FERRY_X"] = `q"\b`
	b, err := merged.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseEnv(b)
	if err != nil || !reflect.DeepEqual(back, merged) {
		t.Errorf("round trip: %v %v\n%s", back, err, b)
	}
	if _, err := (Env{"FERRY_A": "x\ny"}).Marshal(); err == nil {
		t.Error("a newline in a value is accepted")
	}
}

func TestParseEnvHidesValues(t *testing.T) {
	_, err := ParseEnv([]byte("FERRY_SECRET=hunter2-hunter2\nnot a line with hunter2\n"))
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error %v", err)
	}
}

// FuzzParseEnv: whatever a file holds, parsing does not panic, and what it
// accepts survives Marshal and a second parse.
func FuzzParseEnv(f *testing.F) {
	f.Add([]byte("FERRY_SECRET=\"a\\\"b\"\n# x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := ParseEnv(b)
		if err != nil {
			return
		}
		out, err := env.Marshal()
		if err != nil {
			return
		}
		back, err := ParseEnv(out)
		if err != nil || !reflect.DeepEqual(back, env) {
			t.Fatalf("%q: round trip gives %v %v", b, back, err)
		}
	})
}
