package decoy

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io/fs"
	mrand "math/rand/v2"
	"strings"
	"text/template"
	"time"
)

// The built-in site is made from a seed, per install (see Options.Seed): a
// scanner that hashes bodies, compares sizes or dates finds no two origins
// alike, while one origin shows the same site across restarts. Nothing in
// it names ferry; it is one of a few kinds of page a small host shows (a
// placeholder, a personal page, a small firm's, "coming soon", a short
// blog), in words, layout and length drawn from the seed.

// pageSource is the built-in site: a few files in memory.
type pageSource map[string]*memFile

type memFile struct {
	name string
	data []byte
	mod  time.Time
}

func (p pageSource) open(name string) (file, error) {
	if name == "" {
		return &memOpen{memFile: &memFile{name: ".", mod: p["index.html"].mod}, dir: true}, nil
	}
	f, ok := p[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memOpen{memFile: f, Reader: bytes.NewReader(f.data)}, nil
}

type memOpen struct {
	*memFile
	*bytes.Reader
	dir bool
}

func (m *memOpen) Close() error { return nil }
func (m *memOpen) Read(p []byte) (int, error) {
	if m.Reader == nil {
		return 0, &fs.PathError{Op: "read", Path: m.name, Err: fs.ErrInvalid}
	}
	return m.Reader.Read(p)
}
func (m *memOpen) Seek(off int64, whence int) (int64, error) {
	if m.Reader == nil {
		return 0, &fs.PathError{Op: "seek", Path: m.name, Err: fs.ErrInvalid}
	}
	return m.Reader.Seek(off, whence)
}
func (m *memOpen) Stat() (fs.FileInfo, error) { return memInfo{m.memFile, m.dir}, nil }

type memInfo struct {
	*memFile
	dir bool
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return int64(len(i.data)) }
func (i memInfo) ModTime() time.Time { return i.mod }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }
func (i memInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}

// pageEpoch is where a page's dates are drawn from when the host's set-up
// time is unknown: a window of two years before it.
var pageEpoch = time.Date(2026, time.March, 1, 0, 0, 0, 0, time.UTC)

// newPage makes the built-in site for seed (a random one when empty).
// installed is when the host was set up, if known: the files date from
// a little after it, as a page put up by its owner would.
func newPage(seed []byte, installed, now time.Time) pageSource {
	if len(seed) == 0 {
		seed = make([]byte, 32)
		rand.Read(seed)
	}
	sum := sha256.Sum256(append([]byte("decoy page\x00"), seed...))
	rng := mrand.New(mrand.NewChaCha8(sum))

	var mod time.Time
	if !installed.IsZero() && installed.Before(now) {
		// Within a few weeks of set-up.
		mod = installed.Add(time.Duration(rng.Int64N(int64(21 * 24 * time.Hour))))
	} else {
		mod = pageEpoch.Add(-time.Duration(rng.Int64N(int64(2 * 365 * 24 * time.Hour))))
	}
	if mod.After(now) {
		mod = now.Add(-time.Duration(rng.Int64N(int64(time.Hour))))
	}
	mod = mod.Truncate(time.Second).UTC()

	kind := rng.IntN(len(pageTemplates))
	d := pageData(rng, mod, pageTemplates[kind])
	site := pageSource{}
	var body bytes.Buffer
	template.Must(template.New("page").Parse(pageTemplates[kind].text)).Execute(&body, d)
	site["index.html"] = &memFile{name: "index.html", data: tidy(body.Bytes(), rng), mod: mod}
	if d.CSS {
		site["style.css"] = &memFile{name: "style.css", data: []byte(styleSheet(rng)), mod: earlier(rng, mod, 3*time.Hour)}
	}
	if rng.IntN(3) == 0 {
		site["robots.txt"] = &memFile{name: "robots.txt", data: []byte(robots[rng.IntN(len(robots))]), mod: earlier(rng, mod, 48*time.Hour)}
	}
	return site
}

// earlier is a time up to d before t, in whole seconds, as file dates are.
func earlier(rng *mrand.Rand, t time.Time, d time.Duration) time.Time {
	return t.Add(-time.Duration(rng.Int64N(int64(d)))).Truncate(time.Second)
}

// tidy varies the layout a little: indentation by tabs, two or four
// spaces.
func tidy(b []byte, rng *mrand.Rand) []byte {
	indent := []string{"\t", "  ", "    "}[rng.IntN(3)]
	return []byte(strings.ReplaceAll(string(b), "\t", indent))
}

type page struct {
	Name, Owner, Slug, TLD, City, Trade, Tagline, Lang string
	Heading, Notice                                    string
	ATrade                                             string // "an illustrator"
	Year, Since                                        int
	Paras, Items                                       []string
	Posts                                              []post
	CSS                                                bool
	Updated                                            string
}

type post struct{ Date, Title string }

func pick(rng *mrand.Rand, s []string) string { return s[rng.IntN(len(s))] }

func pageData(rng *mrand.Rand, mod time.Time, kind pageTemplate) page {
	first, last := pick(rng, firstNames), pick(rng, lastNames)
	name := pick(rng, nameHeads) + " " + pick(rng, nameTails)
	d := page{
		Name:    name,
		Owner:   first + " " + last,
		Slug:    strings.ToLower(strings.ReplaceAll(name, " ", "")),
		TLD:     pick(rng, []string{"com", "net", "org", "io", "eu", "co"}),
		City:    pick(rng, cities),
		Trade:   pick(rng, trades),
		Tagline: pick(rng, taglines),
		Lang:    pick(rng, []string{"en", "en", "en-US", "en-GB"}),
		Heading: pick(rng, headings),
		Notice:  pick(rng, notices),
		Year:    mod.Year(),
		Since:   mod.Year() - rng.IntN(12),
		CSS:     rng.IntN(2) == 0,
		Updated: mod.Format(pick(rng, []string{"January 2, 2006", "2 January 2006", "2006-01-02", "Jan 2006"})),
	}
	paras := weParagraphs
	if kind.personal {
		paras = iParagraphs
	}
	for _, i := range rng.Perm(len(paras))[:rng.IntN(kind.paras+1)] {
		d.Paras = append(d.Paras, paras[i])
	}
	d.ATrade = "a " + d.Trade
	if strings.ContainsRune("aeio", rune(d.Trade[0])) {
		d.ATrade = "an " + d.Trade
	}
	for _, i := range rng.Perm(len(services))[:2+rng.IntN(4)] {
		d.Items = append(d.Items, services[i])
	}
	t := mod
	for _, i := range rng.Perm(len(postTitles))[:1+rng.IntN(4)] {
		t = t.Add(-time.Duration(1+rng.IntN(60)) * 24 * time.Hour)
		d.Posts = append(d.Posts, post{Date: t.Format("2006-01-02"), Title: postTitles[i]})
	}
	return d
}

func styleSheet(rng *mrand.Rand) string {
	font := pick(rng, []string{"Georgia, serif", "Helvetica, Arial, sans-serif", "system-ui, sans-serif", "\"Segoe UI\", Roboto, sans-serif", "Verdana, sans-serif"})
	width := []string{"40em", "42rem", "720px", "800px", "60ch"}[rng.IntN(5)]
	colour := pick(rng, []string{"#222", "#333", "#1a1a1a", "#2b2b2b", "#444"})
	accent := pick(rng, []string{"#0a58ca", "#2c7a7b", "#b83280", "#c05621", "#2f855a", "#553c9a"})
	return "body {\n\tmax-width: " + width + ";\n\tmargin: 2em auto;\n\tpadding: 0 1em;\n\tfont-family: " + font +
		";\n\tcolor: " + colour + ";\n\tline-height: 1.5;\n}\n\na {\n\tcolor: " + accent + ";\n}\n\nfooter {\n\tmargin-top: 3em;\n\tfont-size: 0.85em;\n\tcolor: #777;\n}\n"
}
