package study

import (
	"fmt"
	"html"
	"math"
	"sort"
	"strings"
	"time"
)

// The plot: a small SVG writer of our own, with inline styles so that the file stands alone (the web's
// plots rely on the page's stylesheet).

var colours = map[string]string{
	Fixed48h: "#7f7f7f", Agency: "#1f77b4", AgencyOperator: "#2ca02c", Oracle: "#d62728",
	OracleUnordered: "#ff7f0e", OracleOperator: "#9467bd",
}

// canvas accumulates SVG elements.
type canvas struct{ b strings.Builder }

func (c *canvas) printf(format string, args ...any) { fmt.Fprintf(&c.b, format, args...) }

func (c *canvas) text(x, y float64, anchor, style, s string) {
	c.printf(`<text x="%s" y="%s" text-anchor="%s" style="font:12px sans-serif;%s">%s</text>`+"\n", f(x), f(y), anchor, style, html.EscapeString(s))
}

func (c *canvas) line(x1, y1, x2, y2 float64, style string) {
	c.printf(`<line x1="%s" y1="%s" x2="%s" y2="%s" style="%s"/>`+"\n", f(x1), f(y1), f(x2), f(y2), style)
}

func (c *canvas) polyline(pts [][2]float64, style string) {
	var b strings.Builder
	for i, p := range pts {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f(p[0]) + "," + f(p[1]))
	}
	c.printf(`<polyline points="%s" style="fill:none;%s"/>`+"\n", b.String(), style)
}

func f(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	return fmt.Sprintf("%.1f", v)
}

// panel is a plotting area with linear axes.
type panel struct {
	x, y, w, h             float64 // in the canvas
	xmin, xmax, ymin, ymax float64
}

func (p panel) px(v float64) float64 { return p.x + (v-p.xmin)/(p.xmax-p.xmin)*p.w }
func (p panel) py(v float64) float64 { return p.y + p.h - (v-p.ymin)/(p.ymax-p.ymin)*p.h }

// axes draws the frame, ticks every xstep and ystep, and the labels.
func (p panel) axes(c *canvas, title, xlabel, ylabel string, xstep, ystep float64, yfmt string) {
	c.text(p.x, p.y-10, "start", "font-weight:bold", title)
	c.line(p.x, p.y+p.h, p.x+p.w, p.y+p.h, "stroke:#000")
	c.line(p.x, p.y, p.x, p.y+p.h, "stroke:#000")
	for v := p.xmin; v <= p.xmax+1e-9; v += xstep {
		c.line(p.px(v), p.y, p.px(v), p.y+p.h, "stroke:#ddd")
		c.text(p.px(v), p.y+p.h+15, "middle", "", fmt.Sprintf("%g", v))
	}
	for v := p.ymin; v <= p.ymax+1e-9; v += ystep {
		c.line(p.x, p.py(v), p.x+p.w, p.py(v), "stroke:#ddd")
		c.text(p.x-5, p.py(v)+4, "end", "", fmt.Sprintf(yfmt, v))
	}
	c.text(p.x+p.w/2, p.y+p.h+32, "middle", "", xlabel)
	c.printf(`<text transform="translate(%s,%s) rotate(-90)" text-anchor="middle" style="font:12px sans-serif">%s</text>`+"\n",
		f(p.x-45), f(p.y+p.h/2), html.EscapeString(ylabel))
}

// SVG draws the study's plot: the distribution of release latency per policy (the share of runs
// locked within a latency), and the in-order jam over simulated time (runs releasable by themselves
// but waiting behind an earlier run).
func SVG(res *Result) string {
	const width, height = 960.0, 760.0
	var c canvas
	c.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s">`+"\n", f(width), f(height), f(width), f(height))
	c.printf(`<rect x="0" y="0" width="%s" height="%s" style="fill:#fff"/>`+"\n", f(width), f(height))
	c.text(width/2, 22, "middle", "font-size:15px;font-weight:bold",
		fmt.Sprintf("spyagency study: %d simulated days, seed %d, faults %s", res.Days, res.Seed, res.Faults))

	// Latency distributions.
	maxH := 48.0
	for _, rs := range res.Releases {
		for _, r := range rs {
			if !r.Locked.IsZero() {
				maxH = math.Max(maxH, r.Latency().Hours())
			}
		}
	}
	cdf := panel{x: 80, y: 60, w: 640, h: 280, xmin: 0, xmax: math.Ceil(maxH/6) * 6, ymin: 0, ymax: 1}
	cdf.axes(&c, "Release latency after run stop: share of runs locked within", "hours after run stop", "share of runs", 6, 0.2, "%.1f")
	legendY := cdf.y + 10
	for _, p := range res.Policies {
		var hours []float64
		for _, r := range res.Releases[p.Policy] {
			if !r.Locked.IsZero() {
				hours = append(hours, r.Latency().Hours())
			}
		}
		if len(hours) == 0 {
			continue
		}
		sort.Float64s(hours)
		pts := [][2]float64{{cdf.px(0), cdf.py(0)}}
		for i, h := range hours {
			pts = append(pts, [2]float64{cdf.px(h), cdf.py(float64(i) / float64(len(hours)))}, [2]float64{cdf.px(h), cdf.py(float64(i+1) / float64(len(hours)))})
		}
		pts = append(pts, [2]float64{cdf.px(cdf.xmax), cdf.py(1)})
		col := colours[p.Policy]
		c.polyline(pts, "stroke-width:2;stroke:"+col)
		c.line(cdf.x+cdf.w+20, legendY, cdf.x+cdf.w+45, legendY, "stroke-width:3;stroke:"+col)
		c.text(cdf.x+cdf.w+50, legendY+4, "start", "", fmt.Sprintf("%s (median %.1f h)", p.Policy, p.MedianHours))
		legendY += 20
	}

	// The in-order jam over time.
	days := float64(res.Days) + 2
	series := map[string][][2]float64{}
	maxJam := 1.0
	for _, p := range res.Policies {
		rs := res.Releases[p.Policy]
		var pts [][2]float64
		for t := 0.0; t <= days*24; t += 0.5 {
			at := res.Start.Add(time.Duration(t * float64(time.Hour)))
			n := waitingAt(rs, at)
			maxJam = math.Max(maxJam, float64(n))
			pts = append(pts, [2]float64{t / 24, float64(n)})
		}
		series[p.Policy] = pts
	}
	ystep := math.Max(1, math.Ceil(maxJam/5))
	jam := panel{x: 80, y: 420, w: 640, h: 280, xmin: 0, xmax: days, ymin: 0, ymax: ystep * 5}
	jam.axes(&c, "In-order jam: runs releasable by themselves, waiting behind an earlier unreleased run", "simulated days", "runs waiting", math.Max(1, math.Ceil(days/14)), ystep, "%.0f")
	legendY = jam.y + 10
	for _, p := range res.Policies {
		if p.JamRunHours == 0 {
			continue
		}
		var pts [][2]float64
		for _, s := range series[p.Policy] {
			pts = append(pts, [2]float64{jam.px(s[0]), jam.py(s[1])})
		}
		col := colours[p.Policy]
		c.polyline(pts, "stroke-width:1.5;stroke:"+col)
		c.line(jam.x+jam.w+20, legendY, jam.x+jam.w+45, legendY, "stroke-width:3;stroke:"+col)
		c.text(jam.x+jam.w+50, legendY+4, "start", "", fmt.Sprintf("%s (%.0f run-hours)", p.Policy, p.JamRunHours))
		legendY += 20
	}
	c.printf("</svg>\n")
	return c.b.String()
}

// waitingAt counts the runs that at t were releasable by themselves while the run before them was not
// yet released (the measure of jam_run_hours at one instant).
func waitingAt(rs []RunRelease, t time.Time) int {
	n := 0
	for i := 1; i < len(rs); i++ {
		r, prev := rs[i], rs[i-1]
		if r.Ready.IsZero() || r.Ready.After(t) {
			continue
		}
		until := minTime(prev.Locked, r.Locked)
		if prev.Locked.IsZero() || r.Locked.IsZero() {
			until = maxTime(prev.Locked, r.Locked)
			if until.IsZero() {
				continue
			}
		}
		if t.Before(until) {
			n++
		}
	}
	return n
}
