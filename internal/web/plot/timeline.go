package plot

import (
	"html/template"
	"slices"
	"strings"
	"time"
)

// Timeline is a run's story on one time axis: one lane for the run itself and one per workflow, with
// vertical lines for deadlines and "now", and diamonds for operator actions.
type Timeline struct {
	ID, Title, Desc string
	From, To        time.Time // the axis; To after From
	Lanes           []Lane
	Lines           []VLine
	Actions         []Point // operator actions, drawn across every lane
}

// Lane is one row of the timeline.
type Lane struct {
	Label  string
	Class  string // the lane label's class (e.g. the workflow's state)
	Bars   []Bar
	Points []Point
}

// Bar is a span of time in a lane.
type Bar struct {
	From, To time.Time
	Class    string
	Title    string
}

// Point is a moment: a milestone in a lane, or an operator action.
type Point struct {
	At    time.Time
	Class string
	Title string
}

// VLine is a labelled vertical line: a deadline, now.
type VLine struct {
	At    time.Time
	Class string
	Label string
}

const (
	laneH  = 26.0
	labelW = 190.0
	axisH  = 30.0
	topPad = 22.0
	// labelRowH lifts a line's label above a neighbour's that it would overlap.
	labelRowH = 14.0
	// charW is a generous width of one character of a line's label, to tell when two labels overlap.
	charW   = 7.5
	rightPd = 12.0
)

// Draw renders the timeline as inline SVG.
func (t Timeline) Draw() template.HTML {
	if !t.To.After(t.From) {
		t.To = t.From.Add(time.Hour)
	}
	span := t.To.Sub(t.From).Seconds()
	plotW := Width - labelW - rightPd
	x := func(at time.Time) float64 {
		f := at.Sub(t.From).Seconds() / span
		return labelW + plotW*min(max(f, 0), 1)
	}
	rows, nRows := labelRows(t.Lines, x)
	top := topPad + labelRowH*float64(nRows-1)
	height := top + laneH*float64(len(t.Lanes)) + axisH
	var s svg
	s.open(t.ID, t.Title, t.Desc, height)
	bottom := top + laneH*float64(len(t.Lanes))
	// Axis: ticks at round offsets from the start.
	stepH := niceStep(span/3600, 8)
	for h := 0.0; h <= span/3600+1e-9; h += stepH {
		at := t.From.Add(time.Duration(h * float64(time.Hour)))
		s.line(x(at), top, x(at), bottom, "grid", "")
		s.text(x(at), bottom+16, "axis", "middle", "+"+Hours(time.Duration(h*float64(time.Hour))))
	}
	s.text(labelW, bottom+axisH-2, "axis", "start", "time since run start ("+t.From.UTC().Format("Jan 2 15:04 MST")+")")
	for i, l := range t.Lanes {
		y := top + laneH*float64(i)
		mid := y + laneH/2
		if i%2 == 1 {
			s.rect(0, y, Width, laneH, "lane-alt", "")
		}
		s.text(labelW-8, mid+5, "lane "+l.Class, "end", l.Label)
		s.line(labelW, mid, Width-rightPd, mid, "lane-line", "")
		for _, b := range l.Bars {
			s.rect(x(b.From), mid-7, x(b.To)-x(b.From), 14, b.Class, b.Title)
		}
		for _, p := range l.Points {
			s.shape("circle", x(p.At), mid, 6, p.Class, p.Title)
		}
	}
	for i, v := range t.Lines {
		s.line(x(v.At), top-8, x(v.At), bottom, v.Class, v.Label)
		// The label's classes are the line's with "-label", so CSS can colour a label without giving
		// text a line's dashes; near an edge the label is anchored inwards so that it is not cut.
		anchor := "middle"
		if x(v.At) > Width-120 {
			anchor = "end"
		} else if x(v.At) < labelW+60 {
			anchor = "start"
		}
		s.text(x(v.At), top-10-labelRowH*float64(rows[i]), "vlabel "+strings.Join(strings.Fields(v.Class), "-label ")+"-label", anchor, v.Label)
	}
	for _, a := range t.Actions {
		s.line(x(a.At), top, x(a.At), bottom, "action-line", a.Title)
		s.shape("diamond", x(a.At), top+4, 7, a.Class, a.Title)
	}
	return s.close()
}

// labelRows gives each line's label a row, 0 being the lowest: a label that would overlap a label
// already placed on a row goes one row up. It returns the rows, by line, and how many rows are used.
func labelRows(lines []VLine, x func(time.Time) float64) ([]int, int) {
	order := make([]int, len(lines))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return lines[a].At.Compare(lines[b].At) })
	rows := make([]int, len(lines))
	var rightEdge []float64 // per row: where the last label placed on it ends
	n := 1
	for _, i := range order {
		w := charW * float64(len([]rune(lines[i].Label)))
		left := x(lines[i].At) - w/2 // labels are centred on their line, except near the edges
		r := 0
		for r < len(rightEdge) && left < rightEdge[r]+6 {
			r++
		}
		if r == len(rightEdge) {
			rightEdge = append(rightEdge, 0)
		}
		rightEdge[r] = x(lines[i].At) + w/2
		rows[i] = r
		n = max(n, r+1)
	}
	return rows, n
}
