package dnsupdate

import (
	"strings"
	"testing"
)

// shown reports whether an error may legitimately contain s: only words
// clip would quote (lower-case letters, digits, dots, dashes) or short ones.
func shown(s string) bool { return len(s) < 6 || clip(s) != "(a word not shown)" }

func FuzzParseTSIG(f *testing.F) {
	f.Add("ferry:hmac-sha256:" + goodSecret)
	f.Add("hmac-sha512:ferry.key.:" + goodSecret)
	f.Add("a:b:c")
	f.Add("::")
	f.Fuzz(func(t *testing.T, v string) {
		k, err := parseTSIG(v)
		if err != nil {
			if parts := strings.SplitN(v, ":", 3); len(parts) == 3 && !shown(parts[2]) && strings.Contains(err.Error(), parts[2]) {
				t.Fatalf("error %q shows the secret", err)
			}
			return
		}
		// What parses, parses again to the same key.
		k2, err := parseTSIG(k.name + ":" + strings.TrimSuffix(k.algorithm, ".") + ":" + k.secret)
		if err != nil || k2 != k {
			t.Fatalf("%v reparsed to %v, %v", k, k2, err)
		}
	})
}

func FuzzParseKeyFile(f *testing.F) {
	f.Add("key \"ferry-update\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + goodSecret + "\";\n};\n")
	f.Add("key x { secret \"" + goodSecret + "\"; algorithm hmac-md5.sig-alg.reg.int; }; # c")
	f.Add("/* */ key \"a\" { };")
	f.Fuzz(func(t *testing.T, text string) {
		k, err := parseKeyFile(text)
		if err != nil {
			toks, terr := tokenize(text)
			if terr != nil {
				return
			}
			for _, tok := range toks {
				if tok.quoted && !shown(tok.text) && strings.Contains(err.Error(), tok.text) {
					t.Fatalf("error %q shows %q", err, tok.text)
				}
			}
			return
		}
		k2, err := parseKeyFile("key \"" + k.name + "\" { algorithm " + k.algorithm + "; secret \"" + k.secret + "\"; };")
		if err != nil || k2 != k {
			t.Fatalf("%v reparsed to %v, %v", k, k2, err)
		}
	})
}

func FuzzParseServer(f *testing.F) {
	for _, s := range []string{"192.0.2.53", "192.0.2.53:5353", "[2001:db8::1]", "[2001:db8::1]:53", "ns1.example.com", "ns1.example.com:53", ":53", "[::1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		hp, err := parseServer(v)
		if err != nil {
			return
		}
		// What parses is a HOST:PORT that parses to itself.
		if again, err := parseServer(hp); err != nil || again != hp {
			t.Fatalf("%q → %q → %q, %v", v, hp, again, err)
		}
	})
}
