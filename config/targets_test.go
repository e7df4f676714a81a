package config

import (
	"reflect"
	"strings"
	"testing"
)

// newDefaultTargets is FERRY_ORIGIN_TARGETS's default once media dials the
// client's server name.
const newDefaultTargets = "chat=g.whatsapp.net:5222|g-fallback.whatsapp.net:5222,chat80=g.whatsapp.net:80|g-fallback.whatsapp.net:80,media=*.whatsapp.net:443|whatsapp.net:443"

func TestParseTargets(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Targets
	}{
		{newDefaultTargets, Targets{
			"chat":   {Alts: []Alt{{"g.whatsapp.net", "5222"}, {"g-fallback.whatsapp.net", "5222"}}},
			"chat80": {Alts: []Alt{{"g.whatsapp.net", "80"}, {"g-fallback.whatsapp.net", "80"}}},
			"media":  {Alts: []Alt{{"*.whatsapp.net", "443"}, {"whatsapp.net", "443"}}},
		}},
		{"a=[::1]:1", Targets{"a": {Alts: []Alt{{"::1", "1"}}}}},
		{" a=h:1 , b=*.x:2 ", Targets{"a": {Alts: []Alt{{"h", "1"}}}, "b": {Alts: []Alt{{"*.x", "2"}}}}},
		{"chat=g.whatsapp.net:5222|g-fallback.whatsapp.net:5222?proxy=v2,media=*.whatsapp.net:443|whatsapp.net:443", Targets{
			"chat":  {Alts: []Alt{{"g.whatsapp.net", "5222"}, {"g-fallback.whatsapp.net", "5222"}}, Proxy: 2, ProxySet: true},
			"media": {Alts: []Alt{{"*.whatsapp.net", "443"}, {"whatsapp.net", "443"}}},
		}},
		{"chat=h:1?proxy=off", Targets{"chat": {Alts: []Alt{{"h", "1"}}, Proxy: 0, ProxySet: true}}},
		{"media=*.a.b:1|*.c:2?proxy=V1", Targets{"media": {Alts: []Alt{{"*.a.b", "1"}, {"*.c", "2"}}, Proxy: 1, ProxySet: true}}},
	} {
		got, err := ParseTargets(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
	}

	for _, tc := range []struct{ in, why string }{
		{"", "no target"},
		{"chat", "has no ="},
		{"=h:1", "route"},
		{"chat=", "not HOST:PORT"},
		{"chat=h", "not HOST:PORT"},
		{"chat=:1", "no host"},
		{"chat=h:0", "port"},
		{"chat=h:1|", "not HOST:PORT"},
		{"chat=h:1,chat=h:2", "listed twice"},
		{"media=*.:443", "no suffix"},
		{"media=*:443", "first label"},
		{"media=*foo.com:443", "first label"},
		{"media=a.*.com:443", "first label"},
		{"media=*.*.com:443", "one '*'"},
		{"media=**.com:443", "first label"},
		{"media=*.com*:443", "one '*'"},
		{"media=*..com:443", "not a DNS name"},
		{"media=*.com.:443", "not a DNS name"},
		{"media=*.a_b.com:443", "not a DNS name"},
		{"media=*." + strings.Repeat("a.", 126) + "a:443", "no name of 253"},
		{"media=*.x.com", "not HOST:PORT"},
		{"chat=h:1?", "no option"},
		{"chat=h:1?proxy=v3", "want off, v1 or v2"},
		{"chat=h:1?proxy=", "want off, v1 or v2"},
		{"chat=h:1?proxy", "want off, v1 or v2"},
		{"chat=h:1?proxy=v1&proxy=v2", "given 2 times"},
		{"chat=h:1?decoy=off", "unknown option"},
		{"chat=h:1?proxy=v1|i:2", "want off, v1 or v2"},
		{"chat=h:1?proxy=v1;x", "options"},
	} {
		_, err := ParseTargets(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%q: error %v, want one saying %q", tc.in, err, tc.why)
		}
	}
}

// TestTargetsString checks that String prints the environment's form, which
// parses back to the same table.
func TestTargetsString(t *testing.T) {
	for _, s := range []string{
		newDefaultTargets,
		"a=[::1]:1|[2001:db8::1]:443",
		"chat=g.whatsapp.net:5222|g-fallback.whatsapp.net:5222?proxy=v2,media=*.whatsapp.net:443|whatsapp.net:443",
		"a=h:1?proxy=off,b=h:2?proxy=v1,m=*.x:1|*.y:2?proxy=v2",
	} {
		ts, err := ParseTargets(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := ts.String(); got != s {
			t.Errorf("%q prints as %q", s, got)
		}
		again, err := ParseTargets(ts.String())
		if err != nil || !reflect.DeepEqual(again, ts) {
			t.Errorf("%q: printed %q parses as %+v, %v", s, ts.String(), again, err)
		}
	}
}

// TestTargetsProxyProtocol checks which routes get a PROXY header.
func TestTargetsProxyProtocol(t *testing.T) {
	ts, err := ParseTargets(newDefaultTargets + ",other=h:1,pat=*.x:1,off=h:1?proxy=off,v2=h:1?proxy=v2,mediav1=h:1?proxy=v1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		route     string
		def, want ProxyProtocol
	}{
		{"chat", 1, 1},
		{"chat", 2, 2},
		{"chat", 0, 0},
		{"chat80", 1, 1},
		{"other", 2, 2},
		{"media", 1, 0}, // named media, and with a pattern
		{"pat", 2, 0},   // with a pattern
		{"off", 1, 0},
		{"v2", 1, 2},
		{"v2", 0, 2},
		{"mediav1", 0, 1},
		{"nope", 1, 0},
	} {
		if got := ts.ProxyProtocol(tc.route, tc.def); got != tc.want {
			t.Errorf("route %s with FERRY_ORIGIN_PROXY_PROTOCOL=%v: %v, want %v", tc.route, tc.def, got, tc.want)
		}
	}

	for _, tc := range []struct {
		targets string
		def     ProxyProtocol
		want    bool
	}{
		{newDefaultTargets, 0, false},
		{newDefaultTargets, 1, true},
		{"media=*.x:1|h:1", 2, false}, // media alone gets none
		{"media=*.x:1|h:1?proxy=v1", 0, true},
		{"chat=h:1?proxy=off", 1, false},
		{"chat=h:1?proxy=v2", 0, true},
	} {
		ts, err := ParseTargets(tc.targets)
		if err != nil {
			t.Fatal(err)
		}
		if got := ts.SendsProxy(tc.def); got != tc.want {
			t.Errorf("%q with FERRY_ORIGIN_PROXY_PROTOCOL=%v: SendsProxy %v, want %v", tc.targets, tc.def, got, tc.want)
		}
	}
}

// FuzzTargetsString checks that whatever ParseTargets accepts has at least
// one alternative per route, well-formed patterns, and prints as a string
// that parses back to the same table and prints the same again.
func FuzzTargetsString(f *testing.F) {
	for _, s := range []string{newDefaultTargets, "a=[::1]:1", "chat=h:1|i:2?proxy=v2,m=*.x.y:443|z:1?proxy=off", "m=*.:1", "m=a.*.b:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := ParseTargets(s)
		if err != nil {
			return
		}
		for name, r := range ts {
			if checkRoute(name) != nil || len(r.Alts) == 0 {
				t.Fatalf("%q: accepted route %q with %+v", s, name, r)
			}
			for _, a := range r.Alts {
				if a.IsPattern() && !MatchName(a.Host, "a"+a.Host[1:]) {
					t.Fatalf("%q: pattern %q matches nothing", s, a.Host)
				}
			}
		}
		out := ts.String()
		again, err := ParseTargets(out)
		if err != nil || !reflect.DeepEqual(again, ts) {
			t.Fatalf("%q parsed as %+v, printed as %q, which parses as %+v, %v", s, ts, out, again, err)
		}
		if again.String() != out {
			t.Fatalf("%q prints as %q, then as %q", s, out, again.String())
		}
	})
}
