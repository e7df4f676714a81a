package admin

import (
	"image"
	"image/color"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"ferry/history"
	"ferry/internal/headless"
	"ferry/metrics"
)

// The graphs' stroke colours, as the page's CSS has them (--c1, --c2).
var (
	strokeDown = color.RGBA{0x1a, 0x73, 0xe8, 0xff}
	strokeUp   = color.RGBA{0xe8, 0x71, 0x0a, 0xff}
)

// TestBrowser renders the stats page of an edge with a full day's history
// in headless Chromium, at a phone's width and a desktop's, and checks
// what a person would see: the header's text, the graphs drawn across
// their width in the stroke colours, and in the rendered DOM the figures.
// With FERRY_STATS_SCREENSHOT set to a file, it writes the phone's
// screenshot there (the README's, docs/stats.png).
func TestBrowser(t *testing.T) {
	headless.Browser(t)
	m := metrics.New("edge", "test")
	h, phones := dayOfPhones(m, history.Points)
	st := statusOf(phones)
	st.Listeners[4].Closed = false
	st.Peers[1].Sessions, st.Peers[1].RTT, st.Peers[1].Note = 1, 121e6, ""
	st.Refusals = nil
	s := &Server{Role: "edge", Version: "ferry v0.9.0", Metrics: m, Log: slog.New(slog.DiscardHandler), History: h,
		Link:   "https://wa.me/proxy?host=proxy.example.org&chatPort=443&mediaPort=587&chatTLS=1",
		Status: func() Status { return st }, OriginNote: func() string { return "" }}
	mux := http.NewServeMux()
	mux.Handle("/", s.Handler())
	// The page with a script added that paints the background by how
	// wide the document is laid out: magenta when wider than the window
	// (a phone would scroll sideways), cyan when not. The page itself has
	// no script. (--dump-dom lays pages out at least 500 px wide, so the
	// width is read from a screenshot.)
	mux.HandleFunc("/wide", func(w http.ResponseWriter, r *http.Request) {
		_, body := render(t, s)
		const probe = `<script>document.body.style.background = document.documentElement.scrollWidth > window.innerWidth ? "#f0f" : "#0ff"</script>`
		io.WriteString(w, strings.Replace(body, "</body>", probe+"</body>", 1))
	})
	ts := httptest.NewServer(mux) // on 127.0.0.1
	defer ts.Close()
	for _, w := range []int{320, 360, 412} {
		img, _ := headless.Screenshot(t, ts.URL+"/wide", w, 700)
		// The left margin, beside the cards.
		if c := color.RGBAModel.Convert(img.At(3, 400)).(color.RGBA); c != (color.RGBA{0, 0xff, 0xff, 0xff}) {
			t.Errorf("at %d px wide: the margin is %v, want cyan (magenta: wider than the window)", w, c)
		}
	}

	dom := headless.DOM(t, ts.URL+"/", 412)
	for _, want := range []string{`id="phones">` + count(phones) + "<", "phones connected now", "24 h ago", "now", ">443<", "chat, TLS",
		"WebSocket over TLS", "QUIC", "38 ms round trip", "to phones: ", "wa.me/proxy", `src="/qr.png"`} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered DOM lacks %q", want)
		}
	}

	for _, size := range []struct {
		name string
		w, h int
	}{{"phone", 412, 1600}, {"desktop", 1280, 1000}} {
		img, file := headless.Screenshot(t, ts.URL+"/", size.w, size.h)
		if b := img.Bounds(); b.Dx() != size.w || b.Dy() != size.h {
			t.Fatalf("%s: screenshot of %v", size.name, b)
		}
		// The header, "ferry edge" in dark text, is in the first 60 px.
		if n := countPixels(img, image.Rect(0, 0, size.w, 60), dark); n < 150 {
			t.Errorf("%s: %d dark pixels in the header, want text", size.name, n)
		}
		// The phones' figure, in large type, below it.
		if n := countPixels(img, image.Rect(0, 60, size.w, 260), dark); n < 1500 {
			t.Errorf("%s: %d dark pixels where the phones' figure is", size.name, n)
		}
		for _, c := range []struct {
			what string
			rgb  color.RGBA
			span int // the least width they are drawn over
		}{
			{"graph lines", strokeDown, size.w / 2}, // every graph has one
			{"traffic up", strokeUp, size.w / 5},    // in one graph: a third of a desktop's row
		} {
			box, n := findPixels(img, img.Bounds(), near(c.rgb))
			// A line drawn across its graph: as many pixels as it is
			// wide at least, below the phones' figure.
			if n < c.span || box.Dx() < c.span || box.Min.Y < 200 {
				t.Errorf("%s: %s: %d pixels of %v in %v", size.name, c.what, n, c.rgb, box)
			}
			t.Logf("%s: %s: %d pixels in %v", size.name, c.what, n, box)
		}
		if out := os.Getenv("FERRY_STATS_SCREENSHOT"); out != "" && size.name == "phone" {
			if err := os.WriteFile(out, file, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// dark is text: near black.
func dark(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r>>8 < 90 && g>>8 < 90 && b>>8 < 90
}

// near matches colours within a small distance of want: a stroke's
// anti-aliased edge is not its colour, its middle is.
func near(want color.RGBA) func(color.Color) bool {
	return func(c color.Color) bool {
		r, g, b, _ := c.RGBA()
		d := func(x uint32, y uint8) int { return max(int(x>>8)-int(y), int(y)-int(x>>8)) }
		return d(r, want.R) < 40 && d(g, want.G) < 40 && d(b, want.B) < 40
	}
}

func countPixels(img image.Image, r image.Rectangle, match func(color.Color) bool) int {
	_, n := findPixels(img, r, match)
	return n
}

// findPixels counts the pixels of r that match, and returns their bounds.
func findPixels(img image.Image, r image.Rectangle, match func(color.Color) bool) (image.Rectangle, int) {
	var box image.Rectangle
	n := 0
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if match(img.At(x, y)) {
				n++
				box = box.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	return box, n
}
