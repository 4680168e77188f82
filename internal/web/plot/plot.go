// Package plot draws the web page's charts as inline SVG on the server: a run's timeline, latency
// histograms, per-run trends and a quality strip. No JavaScript charting, nothing fetched: the SVG is
// part of the HTML.
//
// Every text that reaches the SVG (workflow names, reasons, tag names from the sources) is escaped here,
// and colours are CSS classes, never inline styles, so that a strict Content-Security-Policy holds.
// Charts carry role="img", a <title> and a <desc>, and every mark a <title>, for screen readers and
// for the hover text.
package plot

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
	"time"
)

// Width is the SVG's user-space width; the page scales it to the box it sits in.
const Width = 1000

// svg collects an SVG document; text goes through esc, numbers through num.
type svg struct{ b strings.Builder }

func esc(s string) string { return html.EscapeString(s) }

// num prints a coordinate short and finite (NaN and ±Inf would break the SVG).
func num(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		f = 0
	}
	return fmt.Sprintf("%.1f", f)
}

func (s *svg) open(id, title, desc string, height float64) {
	fmt.Fprintf(&s.b, `<svg xmlns="http://www.w3.org/2000/svg" class="plot" id="%s" viewBox="0 0 %d %s" role="img" aria-labelledby="%s-t %s-d" preserveAspectRatio="xMinYMin meet">`,
		esc(id), Width, num(height), esc(id), esc(id))
	fmt.Fprintf(&s.b, `<title id="%s-t">%s</title><desc id="%s-d">%s</desc>`, esc(id), esc(title), esc(id), esc(desc))
}

func (s *svg) close() template.HTML {
	s.b.WriteString(`</svg>`)
	// The builder only ever received escaped text and numbers: safe to hand to html/template as is.
	return template.HTML(s.b.String())
}

func (s *svg) text(x, y float64, class, anchor, text string) {
	fmt.Fprintf(&s.b, `<text x="%s" y="%s" class="%s" text-anchor="%s">%s</text>`, num(x), num(y), esc(class), anchor, esc(text))
}

func (s *svg) line(x1, y1, x2, y2 float64, class, title string) {
	fmt.Fprintf(&s.b, `<line x1="%s" y1="%s" x2="%s" y2="%s" class="%s">`, num(x1), num(y1), num(x2), num(y2), esc(class))
	if title != "" {
		fmt.Fprintf(&s.b, `<title>%s</title>`, esc(title))
	}
	s.b.WriteString(`</line>`)
}

func (s *svg) rect(x, y, w, h float64, class, title string) {
	fmt.Fprintf(&s.b, `<rect x="%s" y="%s" width="%s" height="%s" class="%s">`, num(x), num(y), num(math.Max(w, 0)), num(math.Max(h, 0)), esc(class))
	if title != "" {
		fmt.Fprintf(&s.b, `<title>%s</title>`, esc(title))
	}
	s.b.WriteString(`</rect>`)
}

// shape draws a marker: a circle, or a diamond for operator actions, so that kinds differ by more
// than colour.
func (s *svg) shape(kind string, x, y, r float64, class, title string) {
	switch kind {
	case "diamond":
		fmt.Fprintf(&s.b, `<path d="M%s %sL%s %sL%s %sL%s %sZ" class="%s">`, num(x), num(y-r), num(x+r), num(y), num(x), num(y+r), num(x-r), num(y), esc(class))
		fmt.Fprintf(&s.b, `<title>%s</title></path>`, esc(title))
	default:
		fmt.Fprintf(&s.b, `<circle cx="%s" cy="%s" r="%s" class="%s"><title>%s</title></circle>`, num(x), num(y), num(r), esc(class), esc(title))
	}
}

// Hours formats a duration for axes and labels: "45m", "3.2h", "2.1d".
func Hours(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + Hours(-d)
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1fh", d.Hours())
	}
	return fmt.Sprintf("%.1fd", d.Hours()/24)
}

// niceStep picks a round axis step that gives about n ticks over span.
func niceStep(span float64, n int) float64 {
	if span <= 0 || n <= 0 {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}
