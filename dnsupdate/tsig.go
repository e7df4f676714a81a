package dnsupdate

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// tsigKey is a TSIG key. Its secret never leaves this package but in the
// signed messages: no String method shows it, and no error quotes it.
type tsigKey struct {
	name      string // fully qualified, lower case
	algorithm string // miekg/dns's name, e.g. dns.HmacSHA256
	secret    string // base64, as miekg/dns takes it
}

// String names the key as an operator wrote it: "ferry-update (hmac-sha256)".
func (k tsigKey) String() string {
	return strings.TrimSuffix(k.name, ".") + " (" + strings.TrimSuffix(k.algorithm, ".") + ")"
}
func (k tsigKey) GoString() string { return k.String() }

// algorithms are the TSIG algorithms miekg/dns signs with, by the names
// BIND and tsig-keygen use.
var algorithms = map[string]string{
	"hmac-md5":    dns.HmacMD5,
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// newTSIGKey checks a key's three parts. The secret is never quoted.
func newTSIGKey(name, algorithm, secret string) (tsigKey, error) {
	fqdn, err := checkName(name)
	if err != nil {
		return tsigKey{}, fmt.Errorf("key name %s %w", clip(name), err)
	}
	alg := strings.TrimSuffix(strings.ToLower(algorithm), ".")
	alg = strings.TrimSuffix(alg, ".sig-alg.reg.int") // hmac-md5's long name
	canon, ok := algorithms[alg]
	if !ok {
		return tsigKey{}, fmt.Errorf("algorithm %s is not one of hmac-sha256, hmac-sha512, hmac-sha384, hmac-sha224, hmac-sha1, hmac-md5", clip(algorithm))
	}
	raw, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		return tsigKey{}, errors.New("the secret is not base64")
	}
	if len(raw) == 0 {
		return tsigKey{}, errors.New("the secret is empty")
	}
	return tsigKey{name: fqdn, algorithm: canon, secret: base64.StdEncoding.EncodeToString(raw)}, nil
}

// parseTSIG reads FERRY_DNS_TSIG's NAME:ALGORITHM:BASE64SECRET. nsupdate -y
// writes ALGORITHM:NAME:SECRET, so that order is taken too, told apart by
// which part names an algorithm.
func parseTSIG(v string) (tsigKey, error) {
	parts := strings.SplitN(v, ":", 3)
	if len(parts) != 3 {
		return tsigKey{}, errors.New("has not three parts separated by colons")
	}
	name, alg, secret := parts[0], parts[1], parts[2]
	if _, ok := algorithms[strings.ToLower(strings.TrimSuffix(name, "."))]; ok {
		name, alg = alg, name
	}
	return newTSIGKey(name, alg, secret)
}

// parseKeyFile reads a key statement of BIND's configuration language, as
// tsig-keygen and ddns-confgen write it:
//
//	key "ferry-update" {
//		algorithm hmac-sha256;
//		secret "base64...";
//	};
//
// Comments (#, //, /* */) are skipped. The file must hold exactly one key,
// so that an operator's choice is never guessed.
func parseKeyFile(text string) (tsigKey, error) {
	toks, err := tokenize(text)
	if err != nil {
		return tsigKey{}, err
	}
	var keys []tsigKey
	for i := 0; i < len(toks); {
		if toks[i].text != "key" || toks[i].quoted {
			return tsigKey{}, fmt.Errorf("unexpected %s where a key statement begins", clip(toks[i].text))
		}
		if i+2 >= len(toks) || toks[i+2].text != "{" || toks[i+2].quoted {
			return tsigKey{}, errors.New(`want key "NAME" { ... };`)
		}
		name := toks[i+1].text
		i += 3
		var alg, secret string
		var haveAlg, haveSecret bool
		for {
			if i >= len(toks) {
				return tsigKey{}, errors.New("the key statement does not end")
			}
			if t := toks[i]; t.text == "}" && !t.quoted {
				if i+1 >= len(toks) || toks[i+1].text != ";" {
					return tsigKey{}, errors.New("want ; after }")
				}
				i += 2
				break
			}
			if i+2 >= len(toks) || toks[i+2].text != ";" || toks[i+2].quoted {
				return tsigKey{}, fmt.Errorf("want ; after the value of %s", clip(toks[i].text))
			}
			switch toks[i].text {
			case "algorithm":
				alg, haveAlg = toks[i+1].text, true
			case "secret":
				secret, haveSecret = toks[i+1].text, true
			default:
				return tsigKey{}, fmt.Errorf("unknown clause %s in the key statement", clip(toks[i].text))
			}
			i += 3
		}
		if !haveAlg || !haveSecret {
			return tsigKey{}, fmt.Errorf("key %s lacks its algorithm or its secret", clip(name))
		}
		k, err := newTSIGKey(name, alg, secret)
		if err != nil {
			return tsigKey{}, err
		}
		keys = append(keys, k)
	}
	if len(keys) != 1 {
		return tsigKey{}, fmt.Errorf("holds %d keys, want exactly one", len(keys))
	}
	return keys[0], nil
}

// clip is what an error quotes of a word from a key file or variable: only
// a short word of lower-case letters, digits, dots and dashes (a keyword, a
// key's name, an algorithm), since a word in an unexpected place may be the
// secret, and base64 of a random secret has upper-case letters or + / =.
func clip(s string) string {
	if len(s) > 40 || strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.')
	}) >= 0 {
		return "(a word not shown)"
	}
	return strconv.Quote(s)
}

type token struct {
	text   string
	quoted bool
}

// tokenize splits BIND's configuration language into words, quoted
// strings and the punctuation { } ;.
func tokenize(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '#' || strings.HasPrefix(s[i:], "//"):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return nil, errors.New("a /* comment does not end")
			}
			i += 2 + end + 2
		case c == '{' || c == '}' || c == ';':
			toks = append(toks, token{text: string(c)})
			i++
		case c == '"':
			end := strings.IndexByte(s[i+1:], '"')
			if end < 0 {
				return nil, errors.New("a quoted string does not end")
			}
			toks = append(toks, token{text: s[i+1 : i+1+end], quoted: true})
			i += 1 + end + 1
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n{};\"#", rune(s[j])) && !strings.HasPrefix(s[j:], "//") && !strings.HasPrefix(s[j:], "/*") {
				j++
			}
			toks = append(toks, token{text: s[i:j]})
			i = j
		}
	}
	return toks, nil
}
