// Package admin serves the admin endpoint: Prometheus metrics at /metrics,
// /healthz, /readyz, and a small stats page at / with the edge's share link
// and its QR code.
package admin

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"ferry/link"
	"ferry/metrics"
)

// Server is an admin endpoint.
type Server struct {
	Role, Version string
	Metrics       *metrics.Metrics
	// Ready says why the process is not ready for traffic, nil when it is:
	// an edge with no tunnel session, or any role while it drains.
	Ready func() error
	// Link is the edge's share link; empty when not known.
	Link string
	Log  *slog.Logger

	started time.Time
}

// Handler returns the endpoint's routes.
func (s *Server) Handler() http.Handler {
	if s.started.IsZero() {
		s.started = time.Now()
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /qr.png", s.qr)
	mux.HandleFunc("GET /{$}", s.page)
	return mux
}

func (s *Server) ready() error {
	if s.Ready == nil {
		return nil
	}
	return s.Ready()
}

// Serve serves on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.Log.Handler(), slog.LevelDebug),
	}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin endpoint: %w", err)
	}
	return nil
}

func (s *Server) qr(w http.ResponseWriter, r *http.Request) {
	if s.Link == "" {
		http.NotFound(w, r)
		return
	}
	code, err := link.QR(s.Link)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Write(code.PNG())
}

// row is one series on the stats page.
type row struct {
	Name, Labels, Value string
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	fams, err := s.Metrics.Registry.Gather()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var rows []row
	for _, f := range fams {
		name := f.GetName()
		if !strings.HasPrefix(name, "ferry_") || name == "ferry_build_info" {
			continue
		}
		for _, m := range f.GetMetric() {
			rows = append(rows, row{Name: strings.TrimPrefix(name, "ferry_"), Labels: labels(m), Value: value(f.GetType(), m)})
		}
	}
	ready := "ready"
	if err := s.ready(); err != nil {
		ready = "not ready: " + err.Error()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	pageTmpl.Execute(w, map[string]any{
		"Role": s.Role, "Version": s.Version, "Ready": ready, "Link": s.Link,
		"Up": time.Since(s.started).Round(time.Second), "Rows": rows,
	})
}

func labels(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func value(t dto.MetricType, m *dto.Metric) string {
	switch t {
	case dto.MetricType_COUNTER:
		return num(m.GetCounter().GetValue())
	case dto.MetricType_GAUGE:
		return num(m.GetGauge().GetValue())
	case dto.MetricType_HISTOGRAM:
		h := m.GetHistogram()
		if h.GetSampleCount() == 0 {
			return "none yet"
		}
		return fmt.Sprintf("%d, mean %s s", h.GetSampleCount(), num(h.GetSampleSum()/float64(h.GetSampleCount())))
	}
	return ""
}

func num(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprint(int64(v))
	}
	return fmt.Sprintf("%.4g", v)
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>ferry {{.Role}}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}td,th{padding:.2em .8em;text-align:left}
tr:nth-child(even){background:#f4f4f4}code{word-break:break-all}</style></head>
<body><h1>ferry {{.Role}}</h1>
<p>{{.Version}} · up {{.Up}} · {{.Ready}}</p>
{{if .Link}}<h2>Share</h2><p>In WhatsApp: Settings → Storage and data → Proxy, or open:</p>
<p><code>{{.Link}}</code></p><p><img src="/qr.png" width="256" height="256" alt="QR code of the link"></p>{{end}}
<h2>Figures</h2><table><tr><th>metric</th><th>labels</th><th>value</th></tr>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{.Labels}}</td><td>{{.Value}}</td></tr>
{{end}}</table>
<p>The same figures, for Prometheus: <a href="/metrics">/metrics</a>.</p></body></html>
`))
