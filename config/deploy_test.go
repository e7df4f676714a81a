package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestDeployVariables keeps deploy/ honest: every FERRY_ variable named
// anywhere in it exists, and every value given literally (NAME=value,
// NAME: value, NAME = "value") parses as ferry would parse it.
func TestDeployVariables(t *testing.T) {
	fields := map[string]reflect.Value{}
	for _, spec := range []any{&Edge{}, &Origin{}, &Standalone{}} {
		eachVar(spec, func(f reflect.StructField, v reflect.Value) { fields[f.Tag.Get("envconfig")] = v })
	}
	names := regexp.MustCompile(`FERRY_[A-Z0-9_]*[A-Z0-9]`)
	assign := regexp.MustCompile(`(?m)^\s*(?:- )?(FERRY_[A-Z0-9_]+)\s*(?:=|:|= )\s*"?([^"\n]*?)"?\s*$`)
	seen := 0
	err := filepath.WalkDir("../deploy", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".sum") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range names.FindAllString(string(b), -1) {
			seen++
			if _, ok := fields[n]; !ok {
				t.Errorf("%s: %s is not a ferry variable", path, n)
			}
		}
		for _, m := range assign.FindAllStringSubmatch(string(b), -1) {
			name, value := m[1], m[2]
			f, ok := fields[name]
			if !ok || strings.HasPrefix(value, "${") {
				continue // named above, or a compose interpolation
			}
			if err := decode(f, value); err != nil {
				t.Errorf("%s: %s=%q: %v", path, name, value, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 20 {
		t.Fatalf("only %d variables seen in deploy/: is the walk broken?", seen)
	}
}

// decode parses value as the variable of field f.
func decode(f reflect.Value, value string) error {
	p := reflect.New(f.Type())
	if d, ok := p.Interface().(interface{ Decode(string) error }); ok {
		return d.Decode(value)
	}
	return nil // a plain string: any value goes
}

// TestDeployNames keeps other projects out of deploy/ and the README: the
// module was once named after an unrelated, existing project, and its
// image, URLs and `go install` lines pointed there. This project has no
// public home yet, so its files install from release archives.
func TestDeployNames(t *testing.T) {
	bad := []string{"ferryproxy", "ghcr.io", "raw.githubusercontent", "docker.io/", "go install"}
	check := func(path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range bad {
			if strings.Contains(string(b), s) {
				t.Errorf("%s names %q", path, s)
			}
		}
	}
	check("../README.md")
	err := filepath.WalkDir("../deploy", func(path string, d fs.DirEntry, err error) error {
		// Tests name what they forbid.
		if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.go") || strings.HasSuffix(path, ".sum") || strings.HasSuffix(path, ".mod") {
			return err
		}
		check(path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
