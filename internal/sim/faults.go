package sim

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// faultKind is what a source does during a fault window.
type faultKind int

const (
	faultNone faultKind = iota
	faultSlow
	faultGarbage
	faultDown503
	faultDownHTML
)

type window struct {
	from, to time.Time
	kind     faultKind
	variant  uint64
}

// The HTTP sources that fault profiles take down.
var faultSources = []string{"oms", "tier0", "dropbox", "dqm"}

// faultWindows are drawn per source and day on demand, so a world of any length needs no plan up front.
// They are the windows of one source that start on day k after the world's start: a Poisson
// number of each kind, each at a uniform time of the day, drawn from (seed, source, day).
func (w *world) faultWindows(source string, k int64) []window {
	key := source + "/" + strconv.FormatInt(k, 10)
	if ws, ok := w.outages[key]; ok {
		return ws
	}
	h := fnv.New64a()
	h.Write([]byte(source))
	rng := rand.New(rand.NewPCG(w.seed^h.Sum64(), uint64(k)))
	day := w.start.Add(time.Duration(k) * 24 * time.Hour)
	var out []window
	add := func(rate float64, length time.Duration, kind func() faultKind) {
		for n := poisson(rng, rate); n > 0; n-- {
			from := day.Add(time.Duration(rng.Int64N(int64(24 * time.Hour)))).Truncate(time.Second)
			out = append(out, window{from: from, to: from.Add(length), kind: kind(), variant: rng.Uint64()})
		}
	}
	add(w.faults.OutagesPerDay, w.faults.Outage, func() faultKind {
		if rng.IntN(2) == 0 {
			return faultDown503
		}
		return faultDownHTML
	})
	add(w.faults.GarbagePerDay, w.faults.GarbageWindow, func() faultKind { return faultGarbage })
	add(w.faults.SlowPerDay, w.faults.SlowWindow, func() faultKind { return faultSlow })
	if len(w.outages) > 4096 {
		clear(w.outages) // a long study: forget old days rather than grow
	}
	w.outages[key] = out
	return out
}

// faultAt is the worst fault of a source at t (down beats garbage beats slow).
func (w *world) faultAt(source string, t time.Time) window {
	if w.faults.OutagesPerDay == 0 && w.faults.GarbagePerDay == 0 && w.faults.SlowPerDay == 0 {
		return window{}
	}
	k := int64(t.Sub(w.start) / (24 * time.Hour))
	best := window{}
	for _, d := range []int64{k - 1, k} {
		if d < 0 {
			continue
		}
		for _, win := range w.faultWindows(source, d) {
			if !t.Before(win.from) && t.Before(win.to) && win.kind > best.kind {
				best = win
			}
		}
	}
	return best
}

func poisson(rng *rand.Rand, rate float64) int {
	if rate <= 0 {
		return 0
	}
	l, k, p := math.Exp(-rate), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// garbage bodies: what a broken proxy or a half-written reply looks like.
var garbageBodies = []string{
	`{"result": [ {"run": 4000`,
	`{"data": "maintenance", "errors": [}`,
	"\x00\x1f\x8b\x08 not json at all",
	`<!DOCTYPE html><html><body>upstream timed out</body></html>`,
}

const downHTML = `<!DOCTYPE html>
<html><head><title>Service unavailable</title></head>
<body><h1>This service is temporarily unavailable</h1>
<p>The CERN web services are undergoing maintenance. Please try again later.</p></body></html>
`

// writeFault answers for a source that is down or broken; it reports whether it did.
func writeFault(rw http.ResponseWriter, win window) bool {
	switch win.kind {
	case faultDown503:
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rw.Header().Set("Retry-After", "600")
		rw.WriteHeader(http.StatusServiceUnavailable)
		rw.Write([]byte("503 Service Unavailable\n"))
		return true
	case faultDownHTML:
		// A single-sign-on or maintenance page answered with 200: the nastiest kind of outage.
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		rw.WriteHeader(http.StatusOK)
		rw.Write([]byte(downHTML))
		return true
	case faultGarbage:
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusOK)
		rw.Write([]byte(garbageBodies[win.variant%uint64(len(garbageBodies))]))
		return true
	}
	return false
}

// Fault names the fault an HTTP source (oms, tier0, dropbox, dqm) is in at t: "down", "garbage",
// "slow", or "" for none. Tests use it to tell the injected outages from failures of the agency's own
// making.
func (s *Sim) Fault(source string, t time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.w.faultAt(source, t).kind {
	case faultDown503, faultDownHTML:
		return "down"
	case faultGarbage:
		return "garbage"
	case faultSlow:
		return "slow"
	}
	return ""
}
