package admin

import (
	"fmt"
	"strconv"
	"strings"

	"ferry/history"
)

// A graph is drawn by the server as inline SVG: no script, no external
// asset, so that the page works offline and through any proxy, and costs
// a phone nothing to render. Its labels are HTML around the SVG, since the
// SVG is stretched to the width of the screen (preserveAspectRatio none)
// and text inside it would be too.
const (
	// graphCols is the SVG's width in columns: history.Points minutes,
	// perMinute of them a column, enough for a desktop's graph and well
	// over a phone's pixels.
	graphCols = history.Points / perColumn
	perColumn = 3
	graphRows = 100 // the SVG's height, in its own units
)

// graph is one small graph on the page.
type graph struct {
	Title string
	Peak  string // the highest point, in words
	Lines []line // drawn in order
	// Span says how much of the 24 h is recorded, when less.
	Span string
}

// line is one series drawn: its path, and the area under it.
type line struct {
	Class, Legend string
	D, Area       string
}

// draw makes the paths of series, scaled so that top is the graph's top.
// Each column is the highest of its minutes: a peak stays visible however
// narrow it was.
func draw(s history.Series, top int64, class, legend string) line {
	n := len(s.Points)
	if n == 0 || top <= 0 {
		top = 1
	}
	cols := make([]int64, graphCols)
	first := -1
	for i, v := range s.Points {
		c := (history.Points - n + i) / perColumn
		if first < 0 {
			first = c
		}
		cols[c] = max(cols[c], v)
	}
	if first < 0 {
		return line{Class: class, Legend: legend}
	}
	y := func(v int64) int {
		// 2 units of margin keep the top of the stroke inside the box.
		return graphRows - int((v*(graphRows-2)+top/2)/top)
	}
	// Relative steps, one column each ("l1-3"): half the bytes of
	// absolute points, and a page of four lines is mostly these.
	steps := make([]byte, 0, 5*graphCols)
	prev := y(cols[first])
	for c := first + 1; c < graphCols; c++ {
		dy := y(cols[c]) - prev
		prev += dy
		steps = append(steps, 'l', '1')
		if dy >= 0 {
			steps = append(steps, ' ')
		}
		steps = strconv.AppendInt(steps, int64(dy), 10)
	}
	if first == graphCols-1 { // one column: a dot would not show
		steps = append(steps, 'h', '1')
	}
	start := fmt.Sprintf("%d %d", first, y(cols[first]))
	path := "M" + start + string(steps)
	area := fmt.Sprintf("M%d %dV%d%sV%dZ", first, graphRows, y(cols[first]), steps, graphRows)
	return line{Class: class, Legend: legend, D: path, Area: area}
}

// span says how much of 24 h n minutes are, when fewer than 24 h.
func span(n int) string {
	if n >= history.Points {
		return ""
	}
	if n == 0 {
		return "no figures yet"
	}
	// The newest point is the minute now, begun.
	return "started " + duration(int64(n-1)*60) + " ago"
}

// duration is secs in words, to the nearest minute: "5 min", "3 h 12
// min", "2 days".
func duration(secs int64) string {
	switch m := (secs + 30) / 60; {
	case m < 1:
		return "under a minute"
	case m < 60:
		return fmt.Sprintf("%d min", m)
	case m < 48*60:
		if m%60 == 0 {
			return fmt.Sprintf("%d h", m/60)
		}
		return fmt.Sprintf("%d h %d min", m/60, m%60)
	default:
		return fmt.Sprintf("%d days", m/(24*60))
	}
}

// count is n with thousands separated: 27,500.
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// byteSize is n bytes in SI units: 12.3 MB.
func byteSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	f := "%.1f %s"
	if v >= 100 {
		f = "%.0f %s"
	}
	return fmt.Sprintf(f, v, [...]string{"B", "kB", "MB", "GB", "TB"}[i])
}
