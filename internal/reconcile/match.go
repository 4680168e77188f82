package reconcile

import (
	"fmt"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// Matching a run's payload in a destination tag (design.md, "Matching a run's payload in the condition
// DB"). PromptReco of run N reads, in each tag of its global tag, the IOV in effect at N and nothing
// else. So in a tag that gates PromptReco the IOV in effect at the run must carry the run's payload; in
// a tag that does not (hlt, express: the upload service moves a since up to the next run HLT or
// Express will process) the payload counts as delivered wherever it landed.
//
// The agency gathers, for a run, the run's own observations and the IOVs that carry its harvested
// payload hashes. The conddb spy files an IOV under the run its since points into, so the run's own
// observations hold every IOV whose since is within the run: every row that can be in effect at one of
// the run's harvested sinces, competing insertions at the same since included. That is all the rule for
// a gating tag reads. The IOVs found by hash are what a non-gating tag's delivery reads, and what the
// reason of a gating tag names when the payload landed elsewhere. An IOV at a since before the run is in
// effect at the run only when none is at the run's own since; such a row is not among the run's
// observations unless it carries the run's payload, so the rule asks for a row at the run's since
// itself, never for one inherited from an earlier run.

// destIndex is a destination tag's dense index (known) when the catalogue has it; destIdx, when not nil,
// holds the file's tags' indices in order.
func (d *deriver) destIndex(tag string, j int, destIdx []int) (k int32, known bool) {
	if destIdx != nil {
		return int32(destIdx[j]), true
	}
	// The metadata names the catalogue's tags in another order, some of them, or other tags.
	i, ok := d.f.cat.DestinationIndex(tag)
	return int32(i), ok
}

// iovsOf is a destination tag's winning IOVs among the run's observations, by since.
func (d *deriver) iovsOf(tag string, k int32, known bool) []int32 {
	if known {
		return d.f.iovs[k]
	}
	return d.f.otherIOVs[tag]
}

// synchronization is a destination tag's TAG.SYNCHRONIZATION as its newest IOV among the run's
// observations gives it, else as the input's tag synchronizations give it, "" when neither does.
func (d *deriver) synchronization(tag string, k int32, known bool) string {
	var o *pcl.Observation
	if known {
		o = d.f.at(d.f.syncs[k])
	} else {
		o = d.f.at(d.f.otherSyncs[tag])
	}
	if o == nil {
		return d.in.Synchronizations[tag]
	}
	return o.Synchronization
}

// gates says whether a destination tag gates PromptReco: the catalogue's say where it has one, else its
// synchronization's (pcl.TagGates: unknown gates).
func (d *deriver) gates(tag string, k int32, known bool) bool {
	if known {
		if g, set := d.f.cat.GatesOf(int(k)); set {
			return g
		}
	}
	return pcl.TagGates(d.synchronization(tag, k, known))
}

// winnerAt is the winning IOV at exactly since among a tag's winners (sorted by since), nil for none.
// A tag holds a few rows for a run, a lumi-based one a few hundred: a search halves them.
func (d *deriver) winnerAt(iovs []int32, since uint64) *pcl.Observation {
	lo, hi := 0, len(iovs)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if d.f.obs[iovs[mid]].Since < since {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(iovs) && d.f.obs[iovs[lo]].Since == since {
		return &d.f.obs[iovs[lo]]
	}
	return nil
}

// checkedSince calls fn for each since at which a gating tag must carry the run's payload: every since
// the harvested file gives within the run, or the run's first since when it gives none there. It stops
// when fn says false.
func (d *deriver) checkedSince(tt pcl.TimeType, payloads []pcl.IOV, fn func(since uint64) bool) {
	inRun := false
	for _, p := range payloads {
		if pcl.RunOfSince(tt, p.Since) == d.f.run {
			inRun = true
			if !fn(p.Since) {
				return
			}
		}
	}
	if !inRun {
		fn(pcl.SinceOfRun(tt, d.f.run))
	}
}

// inEffect says whether, in a gating tag, the IOVs in effect at the run carry the run's payload: at each
// since checkedSince names, the winning IOV carries one of the run's payloads and was inserted after the
// harvest. It cites those IOVs, and returns the newest insertion among them and whether the one at the
// run's first checked since repeats the payload before it (an unchanged payload). A plain loop rather
// than checkedSince's callback: this runs for every gating tag of every file.
func (d *deriver) inEffect(iovs []int32, tt pcl.TimeType, payloads []pcl.IOV, harvested time.Time) (ok bool, inserted time.Time, unchanged bool) {
	from := d.mark()
	var first *pcl.Observation
	inRun := false
	for i := 0; i <= len(payloads); i++ {
		var since uint64
		switch {
		case i < len(payloads) && pcl.RunOfSince(tt, payloads[i].Since) == d.f.run:
			since, inRun = payloads[i].Since, true
		case i < len(payloads) || inRun:
			continue
		default: // the file gives no since within the run
			since = pcl.SinceOfRun(tt, d.f.run)
		}
		w := d.winnerAt(iovs, since)
		if w == nil || !carries(payloads, w.Payload) || w.Inserted.Before(harvested) {
			d.cut(from)
			return false, time.Time{}, false
		}
		d.cite(w)
		inserted = maxTime(inserted, w.Inserted)
		if first == nil || w.Since < first.Since {
			first = w
		}
	}
	return true, inserted, first.Previous != "" && first.Previous == first.Payload
}

// delivered finds, among a tag's winning IOVs, one that carries one of the run's payloads and was
// inserted after the harvest, at whatever since it landed: the rule of a tag that does not gate
// PromptReco. Without payload hashes (no access to the file) the since must point into the run and the
// IOV be inserted after the run stopped: the one fallback of every tag.
func (d *deriver) delivered(iovs []int32, tt pcl.TimeType, payloads []pcl.IOV, harvested time.Time) *pcl.Observation {
	for _, i := range iovs {
		o := &d.f.obs[i]
		if len(payloads) > 0 {
			if carries(payloads, o.Payload) && !o.Inserted.Before(harvested) {
				return o
			}
			continue
		}
		if o.TimeType != "" {
			tt = o.TimeType
		}
		if pcl.RunOfSince(tt, o.Since) == d.f.run && o.Inserted.After(*d.f.info.Stop) {
			return o
		}
	}
	return nil
}

// carries says whether a harvested file holds the payload.
func carries(payloads []pcl.IOV, hash string) bool {
	for _, p := range payloads {
		if p.Payload == hash {
			return true
		}
	}
	return false
}

// notInEffect says, for the reason, why a gating tag's IOV in effect at the run does not carry the run's
// payload: where the payload landed instead, or what is in effect. Only runs not in the DB pay for it.
func (d *deriver) notInEffect(tag string, iovs []int32, tt pcl.TimeType, payloads []pcl.IOV, harvested time.Time) string {
	var why string
	d.checkedSince(tt, payloads, func(since uint64) bool {
		switch w := d.winnerAt(iovs, since); {
		case w == nil:
			return true
		case !carries(payloads, w.Payload):
			why = fmt.Sprintf("the IOV in effect at since %d carries payload %s, not this run's", since, short(w.Payload))
		case w.Inserted.Before(harvested):
			why = fmt.Sprintf("the IOV at since %d carries this run's payload but was inserted before the harvest", since)
		}
		return why == ""
	})
	var landed []string
	for _, i := range iovs {
		if o := &d.f.obs[i]; carries(payloads, o.Payload) && !o.Inserted.Before(harvested) && pcl.RunOfSince(tt, o.Since) != d.f.run {
			landed = append(landed, sinceText(tt, o.Since))
		}
	}
	if len(landed) > 0 {
		w := fmt.Sprintf("the run's payload landed at %s, which PromptReco of run %d does not read", strings.Join(landed, ", "), d.f.run)
		if why != "" {
			w += "; " + why
		}
		why = w
	}
	if why == "" {
		return ""
	}
	return " (" + tag + ": " + why + ")"
}

// sinceText names a since with the run it points into.
func sinceText(tt pcl.TimeType, since uint64) string {
	if tt == pcl.TimeLumi {
		r, l := pcl.UnpackLumi(since)
		return fmt.Sprintf("since %d (run %d, lumisection %d)", since, r, l)
	}
	if r := pcl.RunOfSince(tt, since); r != 0 {
		return fmt.Sprintf("since %d (run %d)", since, r)
	}
	return fmt.Sprintf("since %d", since)
}

// short is the start of a payload hash, as operators quote them.
func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}
