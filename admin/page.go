package admin

import (
	"bytes"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// pageData is what the stats page template is given: the figures already
// in words, so that the template only lays them out.
type pageData struct {
	Role, Version, Up string
	Ready             bool
	NotReady          string // why not, when not ready
	Note              string // OriginNote's
	Phones            string
	PhonesWhat        string
	Sessions          string // an origin's edge sessions; empty elsewhere
	Graphs            []graph
	Routes            []routeRow
	HasRoutes         bool
	Refusals          []refusalRow
	Listeners         []Listener
	Peers             []peerRow
	Link              string
}

type routeRow struct {
	Name, State, Cause string
	Reachable          bool
}

type refusalRow struct {
	Refusal
	CountText string
}

type peerRow struct {
	Peer
	RTTText string
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, s.pageData(time.Now())); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// Figures of now: a stale copy would mislead.
	w.Header().Set("Cache-Control", "no-store")
	// The page runs no script and fetches nothing but its QR code: say so
	// to the browser, so that nothing else can, should a name shown on it
	// ever get past the escaping.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")
	w.Write(buf.Bytes())
}

func (s *Server) pageData(now time.Time) pageData {
	d := pageData{Role: s.Role, Version: s.Version, Up: duration(int64(now.Sub(s.started).Seconds())), Link: s.Link, Ready: true}
	if err := s.ready(); err != nil {
		d.Ready, d.NotReady = false, err.Error()
	}
	if s.OriginNote != nil {
		d.Note = s.OriginNote()
	}
	var st Status
	if s.Status != nil {
		st = s.Status()
	}
	d.Phones = count(st.Phones)
	d.PhonesWhat = "phones connected now"
	if st.Phones == 1 {
		d.PhonesWhat = "phone connected now"
	}
	if s.Role == "origin" {
		d.PhonesWhat = "phones' connections through edges now"
		d.Sessions = count(st.Sessions) + " tunnel sessions with edges"
		if st.Sessions == 1 {
			d.Sessions = "1 tunnel session with edges"
		}
	}
	d.Listeners = st.Listeners
	for _, p := range st.Peers {
		row := peerRow{Peer: p}
		switch ms := float64(p.RTT) / float64(time.Millisecond); {
		case p.RTT <= 0:
		case ms < 10:
			row.RTTText = strconv.FormatFloat(ms, 'f', 1, 64) + " ms round trip"
		default:
			row.RTTText = strconv.FormatFloat(ms, 'f', 0, 64) + " ms round trip"
		}
		d.Peers = append(d.Peers, row)
	}
	for _, rf := range st.Refusals {
		if rf.Count > 0 {
			d.Refusals = append(d.Refusals, refusalRow{rf, count(rf.Count)})
		}
	}
	if s.Routes != nil {
		d.HasRoutes = true
		for _, rt := range s.Routes() {
			row := routeRow{Name: rt.Name, Reachable: rt.Reachable, Cause: rt.Cause, State: "reachable"}
			if !rt.Reachable {
				row.State = "not reachable"
			}
			if !rt.Since.IsZero() {
				row.State += " for " + duration(int64(now.Sub(rt.Since).Seconds()))
			}
			d.Routes = append(d.Routes, row)
		}
	}
	if s.History != nil {
		d.Graphs = s.graphs()
	}
	return d
}

// graphs draws the history: phones connected, new connections, traffic.
func (s *Server) graphs() []graph {
	var gs []graph
	if p, ok := s.History.Get(SeriesPhones); ok {
		title := "Phones connected"
		if s.Role == "origin" {
			title = "Connections through edges"
		}
		// A minute's point is its peak: say so once, here.
		gs = append(gs, graph{Title: title, Peak: "peak " + count(p.Max()) + " at once",
			Lines: []line{draw(p, p.Max(), "l1", "")}, Span: span(len(p.Points))})
	}
	if n, ok := s.History.Get(SeriesNew); ok {
		gs = append(gs, graph{Title: "New connections a minute", Peak: "peak " + count(n.Max()) + " a minute, " + count(n.Total()) + " in all",
			Lines: []line{draw(n, n.Max(), "l1", "")}, Span: span(len(n.Points))})
	}
	up, okUp := s.History.Get(SeriesUp)
	down, okDown := s.History.Get(SeriesDown)
	if okUp && okDown {
		top := max(up.Max(), down.Max())
		gs = append(gs, graph{Title: "Traffic a minute", Peak: "peak " + byteSize(top) + " a minute",
			Lines: []line{
				draw(down, top, "l1", "to phones: "+byteSize(down.Total())),
				draw(up, top, "l2", "from phones: "+byteSize(up.Total())),
			}, Span: span(len(down.Points))})
	}
	for i := range gs {
		if strings.HasPrefix(gs[i].Peak, "peak 0 ") {
			gs[i].Peak = "none yet"
		}
	}
	return gs
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="refresh" content="30">
<title>ferry {{.Role}}: {{.Phones}} connected</title>
<style>
:root{--ink:#1b1f24;--soft:#59636e;--line:#e2e6ea;--ok:#137333;--bad:#b3261e;--c1:#1a73e8;--c2:#e8710a}
*{box-sizing:border-box}
body{margin:0;background:#f4f6f8;color:var(--ink);font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;overflow-wrap:anywhere}
main{max-width:980px;margin:0 auto;padding:12px}
header{display:flex;flex-wrap:wrap;align-items:center;gap:8px 14px;padding:4px 4px 8px}
h1{font-size:1.5rem;margin:0;color:var(--ink)}
h2{font-size:1.05rem;margin:0 0 8px}
.pill{padding:4px 12px;border-radius:999px;font-weight:600;font-size:.95rem}
.ok{background:#e6f4ea;color:var(--ok)}.bad{background:#fce8e6;color:var(--bad)}
.note{background:#fce8e6;color:var(--bad);border:1px solid #f3c1bc;border-radius:12px;padding:12px 16px;font-weight:600;margin:8px 0}
section{background:#fff;border:1px solid var(--line);border-radius:14px;padding:14px 16px;margin:12px 0}
.hero{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 16px}
.big{font-size:4.5rem;font-weight:700;line-height:1;letter-spacing:-.02em}
.soft{color:var(--soft)}
.graphs{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:12px}
@media (max-width:900px){.graphs{grid-template-columns:1fr}}
.graph{border:1px solid var(--line);border-radius:10px;padding:10px 12px}
.graph .head{display:flex;flex-wrap:wrap;justify-content:space-between;gap:0 8px;font-size:.95rem}
.graph .head b{font-weight:600}
svg{display:block;width:100%;height:96px;margin:6px 0 2px;background:linear-gradient(#eef1f4 1px,transparent 1px) 0 0/100% 48px;border-bottom:1px solid #c9d0d6}
.l1{stroke:var(--c1)}.l2{stroke:var(--c2)}
path.a1{fill:var(--c1);opacity:.12}path.a2{fill:var(--c2);opacity:.12}
.axis{display:flex;justify-content:space-between;color:var(--soft);font-size:.85rem}
.legend{font-size:.9rem;margin-top:4px}.legend span{margin-right:12px;white-space:nowrap}
.key{display:inline-block;width:12px;height:4px;border-radius:2px;vertical-align:middle;margin-right:6px}
.k1{background:var(--c1)}.k2{background:var(--c2)}
.cols{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:0 12px}
@media (max-width:600px){.cols{grid-template-columns:1fr}.big{font-size:3.75rem}}
ul.rows{list-style:none;margin:0;padding:0}
.rows li{display:flex;flex-wrap:wrap;align-items:baseline;gap:2px 12px;padding:10px 0;min-height:44px;border-top:1px solid var(--line)}
.rows li:first-child{border-top:0}
.rows .name{font-weight:600;min-width:4.5em}
.rows .end{margin-left:auto}
.rows .line{flex-basis:100%;color:var(--soft);font-size:.9rem}
code{background:#f1f3f5;border-radius:6px;padding:8px;display:block;font-size:.9rem}
.qr{display:block;width:200px;height:200px;margin-top:10px;image-rendering:pixelated}
a{color:var(--c1);padding:10px 0;display:inline-block}
footer{color:var(--soft);font-size:.9rem;padding:4px}
</style></head>
<body><main>
<header><h1>ferry {{.Role}}</h1>
{{if .Ready}}<span class="pill ok">ready</span>{{else}}<span class="pill bad">not ready: {{.NotReady}}</span>{{end}}
</header>
{{with .Note}}<div class="note" role="alert">{{.}}</div>{{end}}
<section class="hero"><span class="big" id="phones">{{.Phones}}</span><span>{{.PhonesWhat}}{{with .Sessions}}<br><span class="soft">{{.}}</span>{{end}}</span></section>
{{if .Graphs}}<section><h2>The last 24 h</h2><div class="graphs">
{{range .Graphs}}<div class="graph"><div class="head"><b>{{.Title}}</b><span class="soft">{{.Peak}}</span></div>
<svg viewBox="0 0 480 100" preserveAspectRatio="none" role="img" aria-label="{{.Title}}">
{{range .Lines}}{{if .Area}}<path class="a{{if eq .Class "l2"}}2{{else}}1{{end}}" d="{{.Area}}"/><path class="{{.Class}}" d="{{.D}}" fill="none" stroke-width="2" stroke-linejoin="round" vector-effect="non-scaling-stroke"/>{{end}}{{end}}
</svg>
<div class="axis"><span>24 h ago</span><span>12 h</span><span>now</span></div>
{{$legend := false}}{{range .Lines}}{{if .Legend}}{{$legend = true}}{{end}}{{end}}
{{if $legend}}<div class="legend">{{range .Lines}}<span><i class="key {{if eq .Class "l2"}}k2{{else}}k1{{end}}"></i>{{.Legend}}</span>{{end}}</div>{{end}}
{{with .Span}}<div class="soft legend">{{.}}</div>{{end}}
</div>
{{end}}</div></section>{{end}}
{{if .HasRoutes}}<section><h2>WhatsApp</h2>{{if .Routes}}<ul class="rows">
{{range .Routes}}<li><span class="name">{{.Name}}</span><span class="{{if .Reachable}}ok{{else}}bad{{end}} pill">{{.State}}</span>{{with .Cause}}<span class="line">{{.}}</span>{{end}}</li>
{{end}}</ul>{{else}}<p class="soft">Not tried yet: the first clients will tell.</p>{{end}}</section>{{end}}
{{if .Refusals}}<section><h2>Refused for a cap, since start</h2><ul class="rows">
{{range .Refusals}}<li><span class="name">{{.Cap}}</span>{{with .Limit}}<span class="soft">{{.}}</span>{{end}}<span class="end">{{.CountText}} refused</span></li>
{{end}}</ul></section>{{end}}
<div class="cols">
{{if .Listeners}}<section><h2>Listeners</h2><ul class="rows">
{{range .Listeners}}<li><span class="name">{{.Port}}</span><span>{{.Carries}}</span><span class="end {{if .Closed}}bad{{else}}ok{{end}} pill">{{if .Closed}}closed: draining{{else}}listening{{end}}</span></li>
{{end}}</ul></section>{{end}}
{{if .Peers}}<section><h2>Tunnels</h2><ul class="rows">
{{range .Peers}}<li><span class="name">{{.Name}}</span><span class="soft">{{.Transport}}</span>{{if ge .Sessions 0}}<span class="end {{if .Sessions}}ok{{else}}bad{{end}} pill">{{if .Sessions}}{{.Sessions}} up{{else}}none up{{end}}</span>{{end}}{{if or .RTTText .Note}}<span class="line">{{.RTTText}}{{if and .RTTText .Note}} · {{end}}{{.Note}}</span>{{end}}</li>
{{end}}</ul></section>{{end}}
</div>
{{if .Link}}<section><h2>Share</h2><p>In WhatsApp: Settings → Storage and data → Proxy, or open this link on the phone:</p>
<code>{{.Link}}</code><img class="qr" src="/qr.png" width="200" height="200" alt="QR code of the link"></section>{{end}}
<footer>{{.Version}} · up {{.Up}} · refreshes every 30 s · <a href="/metrics">all figures (/metrics)</a> · <a href="/readyz">/readyz</a></footer>
</main></body></html>
`))
