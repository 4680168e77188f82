package plot

import (
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 5, 29, 12, 0, 0, 0, time.UTC)

const hostile = `<script>alert(1)</script>"><img src=x onerror=alert(1)>`

// wellFormed parses the SVG as XML: an unescaped string from a source would break it.
func wellFormed(t *testing.T, svg string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("not well-formed SVG: %v\n%s", err, svg)
		}
	}
}

func TestTimelineEscapesAndPlaces(t *testing.T) {
	t.Parallel()
	tl := Timeline{ID: "tl", Title: "run " + hostile, Desc: hostile, From: t0, To: t0.Add(10 * time.Hour),
		Lanes: []Lane{{Label: hostile, Class: "st-in-db", Bars: []Bar{{From: t0, To: t0.Add(5 * time.Hour), Class: "run-bar", Title: hostile}},
			Points: []Point{{At: t0.Add(5 * time.Hour), Class: "ms", Title: hostile}}}},
		Lines:   []VLine{{At: t0.Add(8 * time.Hour), Class: "deadline", Label: "deadline"}},
		Actions: []Point{{At: t0.Add(20 * time.Hour), Class: "action", Title: "hold by " + hostile}}}
	out := string(tl.Draw())
	wellFormed(t, out)
	if strings.Contains(out, "<script") || strings.Contains(out, "<img") {
		t.Errorf("hostile text reached the SVG unescaped")
	}
	// A milestone half-way along a 10 h axis sits half-way across the plot area.
	wantX := labelW + (Width-labelW-rightPd)*0.5
	if !strings.Contains(out, `cx="`+num(wantX)+`"`) {
		t.Errorf("milestone not at x=%s", num(wantX))
	}
	// An action after the axis end is clamped to its right edge, not drawn off the picture.
	if !strings.Contains(out, `x1="`+num(Width-rightPd)+`"`) {
		t.Errorf("action beyond the axis was not clamped")
	}
}

func TestHistogramCountsAndQuantiles(t *testing.T) {
	t.Parallel()
	var vs []time.Duration
	for i := 1; i <= 10; i++ {
		vs = append(vs, time.Duration(i)*time.Hour)
	}
	if q := Quantile(vs, 0.5); q != 5*time.Hour {
		t.Errorf("median %s", q)
	}
	if q := Quantile(vs, 0.9); q != 9*time.Hour {
		t.Errorf("p90 %s", q)
	}
	out := string(Histogram{ID: "h", Title: hostile, Values: vs, Bins: 5}.Draw())
	wellFormed(t, out)
	if n := strings.Count(out, "<rect "); n != 5 {
		t.Errorf("%d bars for 5 bins", n)
	}
	// 1 h..10 h over 5 bins of 2 h, [lo, hi): 1, 2, 2, 2, then 3 (the maximum lands in the last bin).
	if strings.Count(out, ": 1 runs</title>") != 1 || strings.Count(out, ": 2 runs</title>") != 3 || strings.Count(out, ": 3 runs</title>") != 1 {
		t.Errorf("bins not evenly filled: %s", out)
	}
	empty := string(Histogram{ID: "e", Title: "x"}.Draw())
	wellFormed(t, empty)
	if !strings.Contains(empty, "no run reached") {
		t.Error("an empty histogram does not say it is empty")
	}
}

func TestTrendAndStrip(t *testing.T) {
	t.Parallel()
	tr := string(Trend{ID: "t", Title: hostile, Points: []TrendPoint{{Run: 3, Value: time.Hour, Title: hostile}, {Run: 1, Value: 2 * time.Hour}}}.Draw())
	wellFormed(t, tr)
	if i, j := strings.Index(tr, "run 1:"), strings.Index(tr, "run 3:"); i < 0 || j < 0 || i > j {
		t.Error("trend points not in run order")
	}
	st := string(Strip{ID: "s", Title: "q", Cells: []StripCell{{Run: 2, Class: "q-bad", Symbol: "✗", Title: hostile}}}.Draw())
	wellFormed(t, st)
	if strings.Contains(st, "<img") {
		t.Error("strip title unescaped")
	}
}

func TestNumAndHours(t *testing.T) {
	t.Parallel()
	if num(math.NaN()) != "0.0" || num(math.Inf(1)) != "0.0" {
		t.Error("non-finite coordinates leak into the SVG")
	}
	for d, want := range map[time.Duration]string{30 * time.Minute: "30m", 90 * time.Minute: "1.5h", 72 * time.Hour: "3.0d", -time.Hour: "-1.0h"} {
		if got := Hours(d); got != want {
			t.Errorf("Hours(%s) = %s, want %s", d, got, want)
		}
	}
}

// TestTimelineLabelsDoNotOverlap: "now" an hour before the workflow deadline on a two-day axis would
// print over it; its label goes on a row above, and a label far away stays on the lowest row.
func TestTimelineLabelsDoNotOverlap(t *testing.T) {
	t.Parallel()
	tl := Timeline{ID: "tl", Title: "run", From: t0, To: t0.Add(50 * time.Hour),
		Lanes: []Lane{{Label: "SiStripGains", Class: "st-in-db"}},
		Lines: []VLine{
			{At: t0.Add(22 * time.Hour), Class: "deadline wf-deadline", Label: "workflow deadline"},
			{At: t0.Add(21 * time.Hour), Class: "now", Label: "now"},
			{At: t0.Add(48 * time.Hour), Class: "deadline", Label: "run deadline"},
		}}
	x := func(at time.Time) float64 {
		return labelW + (Width-labelW-rightPd)*at.Sub(tl.From).Seconds()/tl.To.Sub(tl.From).Seconds()
	}
	rows, n := labelRows(tl.Lines, x)
	if n != 2 || rows[1] != 0 || rows[0] != 1 || rows[2] != 0 {
		t.Fatalf("label rows %v (%d used), want now and the run deadline on row 0, the workflow deadline on row 1", rows, n)
	}
	out := string(tl.Draw())
	wellFormed(t, out)
	// The upper label sits one row above the lower ones, and the lanes move down to make room.
	for _, want := range []string{`y="` + num(topPad+labelRowH-10-labelRowH) + `"`, `y="` + num(topPad+labelRowH-10) + `"`} {
		if !strings.Contains(out, want) {
			t.Errorf("no label at %s in %s", want, out)
		}
	}
	one := Timeline{ID: "tl", From: t0, To: t0.Add(50 * time.Hour), Lines: tl.Lines[2:]}
	if _, n := labelRows(one.Lines, x); n != 1 {
		t.Errorf("a single label used %d rows", n)
	}
}
