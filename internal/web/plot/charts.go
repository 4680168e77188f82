package plot

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"time"
)

// Histogram is a latency distribution.
type Histogram struct {
	ID, Title string
	Values    []time.Duration
	Bins      int // default 20
}

const (
	chartH = 220.0
	padL   = 60.0
	padB   = 36.0
	padT   = 14.0
)

// Draw renders the histogram; with no value it says so in the picture.
func (h Histogram) Draw() template.HTML {
	var s svg
	n := len(h.Values)
	desc := fmt.Sprintf("%d runs", n)
	if n > 0 {
		desc += fmt.Sprintf(": median %s, 90th percentile %s, slowest %s", Hours(Quantile(h.Values, 0.5)), Hours(Quantile(h.Values, 0.9)), Hours(slices.Max(h.Values)))
	}
	s.open(h.ID, h.Title, desc, chartH)
	if n == 0 {
		s.text(Width/2, chartH/2, "empty", "middle", "no run reached both milestones yet")
		return s.close()
	}
	bins := h.Bins
	if bins <= 0 {
		bins = 20
	}
	hi := max(slices.Max(h.Values), time.Minute)
	counts := make([]int, bins)
	for _, v := range h.Values {
		i := int(float64(max(v, 0)) / float64(hi) * float64(bins))
		counts[min(i, bins-1)]++
	}
	top := slices.Max(counts)
	plotW, plotH := Width-padL-10, chartH-padT-padB
	bw := plotW / float64(bins)
	for i, c := range counts {
		bh := plotH * float64(c) / float64(top)
		from := time.Duration(float64(hi) * float64(i) / float64(bins))
		to := time.Duration(float64(hi) * float64(i+1) / float64(bins))
		s.rect(padL+bw*float64(i)+1, padT+plotH-bh, bw-2, bh, "bar", fmt.Sprintf("%s to %s: %d runs", Hours(from), Hours(to), c))
	}
	s.line(padL, padT+plotH, Width-10, padT+plotH, "axis-line", "")
	for i := 0; i <= 4; i++ {
		at := time.Duration(float64(hi) * float64(i) / 4)
		s.text(padL+plotW*float64(i)/4, chartH-padB+18, "axis", "middle", Hours(at))
	}
	s.text(padL-6, padT+10, "axis", "end", fmt.Sprint(top))
	s.text(padL-6, padT+plotH, "axis", "end", "0")
	med := Quantile(h.Values, 0.5)
	mx := padL + plotW*float64(med)/float64(hi)
	s.line(mx, padT, mx, padT+plotH, "median", "median "+Hours(med))
	s.text(mx+4, padT+10, "median-label", "start", "median "+Hours(med))
	return s.close()
}

// Quantile is the q-quantile (nearest rank) of values; zero for none.
func Quantile(values []time.Duration, q float64) time.Duration {
	if len(values) == 0 {
		return 0
	}
	v := slices.Clone(values)
	slices.Sort(v)
	i := int(math.Ceil(q*float64(len(v)))) - 1
	return v[min(max(i, 0), len(v)-1)]
}

// TrendPoint is one run's value in a trend.
type TrendPoint struct {
	Run   uint32
	Value time.Duration
	Class string
	Title string
}

// Trend is a value per run, oldest run on the left.
type Trend struct {
	ID, Title string
	Points    []TrendPoint
}

// Draw renders the trend as points joined in run order.
func (t Trend) Draw() template.HTML {
	var s svg
	pts := slices.Clone(t.Points)
	slices.SortFunc(pts, func(a, b TrendPoint) int { return int(int64(a.Run) - int64(b.Run)) })
	s.open(t.ID, t.Title, fmt.Sprintf("%d runs", len(pts)), chartH)
	if len(pts) == 0 {
		s.text(Width/2, chartH/2, "empty", "middle", "no run reached both milestones yet")
		return s.close()
	}
	hi := time.Minute
	for _, p := range pts {
		hi = max(hi, p.Value)
	}
	plotW, plotH := Width-padL-10, chartH-padT-padB
	x := func(i int) float64 {
		if len(pts) == 1 {
			return padL + plotW/2
		}
		return padL + plotW*float64(i)/float64(len(pts)-1)
	}
	y := func(v time.Duration) float64 { return padT + plotH - plotH*float64(max(v, 0))/float64(hi) }
	s.line(padL, padT+plotH, Width-10, padT+plotH, "axis-line", "")
	for i := 0; i <= 4; i++ {
		v := time.Duration(float64(hi) * float64(i) / 4)
		s.line(padL, y(v), Width-10, y(v), "grid", "")
		s.text(padL-6, y(v)+4, "axis", "end", Hours(v))
	}
	path := ""
	for i, p := range pts {
		cmd := "L"
		if i == 0 {
			cmd = "M"
		}
		path += cmd + num(x(i)) + " " + num(y(p.Value))
	}
	fmt.Fprintf(&s.b, `<path d="%s" class="trend-line"/>`, path)
	for i, p := range pts {
		s.shape("circle", x(i), y(p.Value), 4, "pt "+p.Class, fmt.Sprintf("run %d: %s%s", p.Run, Hours(p.Value), suffix(p.Title)))
	}
	s.text(padL, chartH-8, "axis", "start", fmt.Sprintf("run %d", pts[0].Run))
	s.text(Width-10, chartH-8, "axis", "end", fmt.Sprintf("run %d", pts[len(pts)-1].Run))
	return s.close()
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// Strip is one mark per run: the DQM quality over runs. Class picks the colour, Symbol keeps the meaning
// readable without colour.
type Strip struct {
	ID, Title string
	Cells     []StripCell
}

// StripCell is one run's mark.
type StripCell struct {
	Run    uint32
	Class  string
	Symbol string
	Title  string
}

// Draw renders the strip, oldest run on the left.
func (st Strip) Draw() template.HTML {
	var s svg
	cells := slices.Clone(st.Cells)
	slices.SortFunc(cells, func(a, b StripCell) int { return int(int64(a.Run) - int64(b.Run)) })
	const h = 64.0
	s.open(st.ID, st.Title, fmt.Sprintf("%d runs", len(cells)), h)
	if len(cells) == 0 {
		s.text(Width/2, h/2, "empty", "middle", "no run yet")
		return s.close()
	}
	w := math.Min((Width-20)/float64(len(cells)), 40)
	for i, c := range cells {
		x := 10 + w*float64(i)
		s.rect(x, 8, w-1, 30, "q "+c.Class, fmt.Sprintf("run %d: %s", c.Run, c.Title))
		if w >= 12 {
			s.text(x+w/2, 28, "q-sym", "middle", c.Symbol)
		}
	}
	s.text(10, h-6, "axis", "start", fmt.Sprintf("run %d", cells[0].Run))
	s.text(Width-10, h-6, "axis", "end", fmt.Sprintf("run %d", cells[len(cells)-1].Run))
	return s.close()
}
