package sim

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// logRecord is one line of the upload log (docs/upload-log.md).
type logRecord struct {
	FileHash       string
	FileName       string
	InputTag       string
	DestinationTag string
	Status         string
	Info           string
	Uploaded       time.Time
	Logged         time.Time
}

// harvest is AlcaHarvest of one workflow of a run: per input tag a .db with the payload and its IOV and
// a .txt with the dropBox metadata, or nothing at all. The DQM GUI shows the harvesting later.
func (w *world) harvest(r *run, i int) {
	wt := &r.Workflows[i]
	wt.Harvested = true
	wf, _ := w.cat.Workflow(wt.Workflow)
	if wt.Outcome == OutcomeNoPayload {
		w.record("run %d %s no payload", r.Number, wt.Workflow)
		w.at(w.now.Add(w.p.DQMLatency), prioDQM, r.Number, i, func() { wt.Quality = []int{30} })
		return
	}
	for _, in := range wf.Inputs {
		f := FileTruth{InputTag: in.Tag, Since: pcl.SinceOfRun(in.TimeType, r.Number), Harvested: w.now}
		f.Name = fmt.Sprintf("Run%d@%s@%s.db", r.Number, in.Tag, uuid(r))
		f.PayloadHash = w.payloadHash(r, in.Tag)
		f.FileHash = sha1Hex("upload", f.Name, f.PayloadHash)
		if err := w.disk.writeHarvest(r, wf, in, f, w.now); err != nil {
			w.fail(err)
			continue
		}
		w.lastPayload[in.Tag] = f.PayloadHash
		wt.Files = append(wt.Files, f)
		w.record("run %d %s harvested %s payload=%s", r.Number, wt.Workflow, f.Name, f.PayloadHash[:12])
	}
	q := w.qualityDraw(r)
	w.at(w.now.Add(w.p.DQMLatency), prioDQM, r.Number, i, func() {
		wt.Quality = q
		w.record("run %d %s dqm %v", r.Number, wt.Workflow, q)
	})
}

// payloadHash is a new payload's SHA-1, or now and then the previous payload of the tag again (the
// "null" payloads some workflows upload when nothing changed).
func (w *world) payloadHash(r *run, tag string) string {
	if prev, ok := w.lastPayload[tag]; ok && r.rng.Float64() < w.p.UnchangedRate {
		return prev
	}
	return sha1Hex("payload", fmt.Sprint(w.seed), fmt.Sprint(r.Number), tag)
}

func (w *world) qualityDraw(r *run) []int {
	x := r.rng.Float64()
	switch {
	case x < w.p.BadRate:
		return []int{100, 300}
	case x < w.p.BadRate+w.p.WarningRate:
		return []int{100, 200}
	}
	return []int{100, 100}
}

// uuid draws a version-4 UUID from the run's random stream.
func uuid(r *run) string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := r.rng.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func sha1Hex(parts ...string) string {
	h := sha1.Sum([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:])
}

// uploadLoop is Tier-0's condition upload: it walks the stopped runs in order and uploads every harvested
// file; it stops at the first run whose harvesting is unfinished, unless conditionUploadTimeout passed
// since that run's stop. Runs whose files are all resolved and uploaded leave the walk; late payloads of
// runs it gave up on are still uploaded.
func (w *world) uploadLoop() {
	keep := w.walk[:0]
	blocked := false
	for _, r := range w.walk {
		if !blocked {
			resolved := true
			for i := range r.Workflows {
				wt := &r.Workflows[i]
				if !wt.Harvested {
					resolved = false
					continue
				}
				for j := range wt.Files {
					if wt.Files[j].Uploaded.IsZero() {
						w.upload(r, i, j)
					}
				}
			}
			if !resolved && w.now.Before(r.Stop.Add(w.p.ConditionUploadTimeout)) {
				blocked = true
			}
			if resolved && w.streamsAllDone(r) {
				continue // finished: leaves the walk
			}
		}
		if w.now.Sub(r.Stop) > w.p.RecoDelay*2 && !blocked {
			continue // a missing payload never comes; stop visiting the run
		}
		keep = append(keep, r)
	}
	w.walk = keep
}

func (w *world) streamsAllDone(r *run) bool {
	for _, s := range r.Streams {
		if s.Done.IsZero() {
			return false
		}
	}
	return true
}

// upload writes the .txt.uploaded marker and sends the file to the dropBox, which processes it a little
// later.
func (w *world) upload(r *run, i, j int) {
	f := &r.Workflows[i].Files[j]
	_, in, _ := w.cat.ByInputTag(f.InputTag)
	if err := w.disk.writeMarker(r, f, *in, w.now); err != nil {
		w.fail(err)
		return
	}
	f.Uploaded = w.now
	w.record("run %d uploaded %s", r.Number, f.Name)
	dests := slices.Clone(in.Destinations)
	slices.Sort(dests)
	for _, d := range dests {
		f.Tags = append(f.Tags, TagTruth{Tag: d})
	}
	w.at(w.now.Add(span(r.rng, w.p.DropboxLatency)), prioDropbox, r.Number, i*8+j, func() { w.dropbox(r, i, j, in.TimeType) })
}

// dropbox applies the synchronization rules of cms-interfaces.md §3.3 to each destination tag, appends
// the IOVs, and logs one record per tag.
func (w *world) dropbox(r *run, i, j int, tt pcl.TimeType) {
	f := &r.Workflows[i].Files[j]
	fcsr := w.t0.fcsr()
	for k := range f.Tags {
		t := &f.Tags[k]
		since := f.Since
		switch sync := Synchronization(t.Tag); {
		case r.rng.Float64() < w.faults.UploadFailRate:
			t.Status, t.Info = "fail", "upload failed: the dropBox could not write to the condition DB (simulated fault)"
		case sync == "pcl" && fcsr > 0 && since < pcl.SinceOfRun(tt, fcsr):
			t.Status = "too-late"
			t.Info = fmt.Sprintf("since %d is below the first condition-safe run %d: upload refused", since, fcsr)
		case sync == "hlt" || sync == "express":
			// HLT and express tags take the payload from the run after the last one started.
			if first := pcl.SinceOfRun(tt, w.lastStartedRun()+1); since < first {
				since = first
			}
			fallthrough
		default:
			if sync == "offline" && since <= w.lastSince[t.Tag] {
				t.Status, t.Info = "skip", fmt.Sprintf("since %d is not after the tag's last since %d", since, w.lastSince[t.Tag])
				break
			}
			// INSERTION_TIME is part of the IOV key and kept to the microsecond: appends of one instant
			// (two files moved to the same FCSR) get distinct microseconds.
			ins := w.now
			if !ins.After(w.lastInsert) {
				ins = w.lastInsert.Add(time.Microsecond)
			}
			w.lastInsert = ins
			if err := w.disk.appendIOV(t.Tag, f, since, ins); err != nil {
				w.fail(err)
				t.Status, t.Info = "fail", "upload failed: "+err.Error()
				break
			}
			t.Status, t.Since, t.InDB = "ok", since, ins
			t.Info = fmt.Sprintf("1 IOV appended, since %d", since)
			if since != f.Since {
				t.Info = fmt.Sprintf("1 IOV appended, since %d moved up from %d", since, f.Since)
			}
			w.lastSince[t.Tag] = max(w.lastSince[t.Tag], since)
		}
		t.Logged = w.now
		w.uploadLog = append(w.uploadLog, logRecord{FileHash: f.FileHash, FileName: f.Name, InputTag: f.InputTag,
			DestinationTag: t.Tag, Status: t.Status, Info: t.Info, Uploaded: f.Uploaded, Logged: w.now})
		w.record("run %d dropbox %s %s %s since=%d", r.Number, f.Name, t.Tag, t.Status, t.Since)
	}
}

func (w *world) lastStartedRun() uint32 {
	if len(w.runs) == 0 {
		return 0
	}
	return w.runs[len(w.runs)-1].Number
}

// Synchronization is the synchronization type the simulator gives a destination tag, from its name:
// _hlt and _express tags (cms-interfaces.md §3.3), _off tags offline, every other PCL tag pcl.
func Synchronization(tag string) string {
	switch {
	case strings.HasSuffix(tag, "_off"):
		return "offline"
	case strings.HasSuffix(tag, "_hlt"):
		return "hlt"
	case strings.HasSuffix(tag, "_express"):
		return "express"
	}
	return "pcl"
}
