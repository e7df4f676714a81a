package install

import (
	"bufio"
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// Env is a role's environment, as the host's /etc/ferry/ROLE.env holds it.
type Env map[string]string

// ParseEnv reads an environment file in the form of deploy/systemd/edge.env
// (and systemd's EnvironmentFile): KEY=VALUE lines, # comments, blank lines,
// a value optionally in double or single quotes. Only FERRY_ variables are
// allowed, so that a typo or a stray file is caught here rather than on the
// host. Errors name the line, never a value: the value may be the secret.
func ParseEnv(b []byte) (Env, error) {
	env := Env{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(strings.TrimPrefix(k, "export "))
		if !ok || !validKey(k) {
			return nil, fmt.Errorf("line %d: want FERRY_NAME=VALUE", n)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			q := v[0]
			v = v[1 : len(v)-1]
			if q == '"' {
				v = strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\$`, `$`).Replace(v)
			}
		}
		env[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	return env, nil
}

func validKey(k string) bool {
	if !strings.HasPrefix(k, "FERRY_") || len(k) == len("FERRY_") {
		return false
	}
	for _, c := range k {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// FromEnviron returns the FERRY_ variables of environ (os.Environ's form),
// but FERRY_DNS_*: those are `ferry deploy -dns`'s own credentials, which
// must stay on the operator's machine (an edge is the host most likely to be
// seized), and which ferry edge would refuse as variables no role reads.
func FromEnviron(environ []string) Env {
	env := Env{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && validKey(k) && !strings.HasPrefix(k, "FERRY_DNS_") {
			env[k] = v
		}
	}
	return env
}

// Merge returns file's variables overridden by vars': a variable set on the
// operator's command line is the more deliberate choice, as flags beat
// configuration files elsewhere.
func Merge(file, vars Env) Env {
	out := Env{}
	for k, v := range file {
		out[k] = v
	}
	for k, v := range vars {
		out[k] = v
	}
	return out
}

// Marshal writes env as systemd's EnvironmentFile reads it, sorted, every
// value double-quoted so that spaces, quotes and backslashes survive.
func (env Env) Marshal() ([]byte, error) {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString("# Written by ferry deploy; readable by root only.\n")
	for _, k := range keys {
		v := env[k]
		if strings.ContainsAny(v, "\n\r\x00") {
			return nil, fmt.Errorf("%s: a value cannot span lines", k)
		}
		fmt.Fprintf(&b, "%s=\"%s\"\n", k, strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v))
	}
	return b.Bytes(), nil
}
