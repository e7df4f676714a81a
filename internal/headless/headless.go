// Package headless renders pages in a real browser for tests: Debian's
// chromium, headless, run once per page with a profile of its own.
package headless

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Timeout bounds one run of the browser: a cold start on a shared
// 2-core machine takes a few seconds.
const Timeout = 60 * time.Second

// Browser returns the path of chromium; without one, the test is skipped,
// except in CI (CI set), which installs it: there it fails.
func Browser(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if bin, err := exec.LookPath(name); err == nil {
			return bin
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed, and CI must render the stats page")
	}
	t.Skip("chromium is not installed: the stats page is not rendered")
	return ""
}

// run runs the browser on url with args, and returns its standard output.
func run(t testing.TB, url string, args ...string) []byte {
	t.Helper()
	bin := Browser(t)
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	defer cancel()
	dir := t.TempDir()
	// Root needs --no-sandbox; the rest keeps the browser off the network
	// and out of the way: no first run, no updates, no GPU.
	args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + filepath.Join(dir, "profile"),
		"--no-first-run", "--disable-extensions", "--disable-background-networking", "--disable-sync",
		"--hide-scrollbars", "--force-device-scale-factor=1",
		// A container's /dev/shm is often 64 MB: too small for a renderer.
		"--disable-dev-shm-usage"}, args...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// Screenshot renders url in a window of w×h CSS pixels and returns the
// image, and its PNG file's bytes.
func Screenshot(t testing.TB, url string, w, h int) (image.Image, []byte) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "shot.png")
	run(t, url, "--screenshot="+file, "--window-size="+itoa(w)+","+itoa(h))
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	return img, b
}

// DOM renders url in a window w pixels wide and returns the DOM as the
// browser has it then, serialized.
func DOM(t testing.TB, url string, w int) string {
	t.Helper()
	return string(run(t, url, "--dump-dom", "--window-size="+itoa(w)+",1000"))
}

func itoa(n int) string { return strconv.Itoa(n) }
