package reconcile

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// AlcaHarvestTimeout is Tier-0's alcaHarvestTimeout: AlcaHarvest runs at the latest this long after run
// stop, on whatever statistics it has (cms-interfaces.md §1).
const AlcaHarvestTimeout = 12 * time.Hour

// SourceView is what the reconcile needs to know of a source's health.
type SourceView struct {
	// View is when the newest view of the source whose observations are stored was taken: the start
	// of that poll's listing or query. Anything the source held at that instant has been seen, so a
	// conclusion from absence may rest on a view taken after the fact it waits for.
	View  time.Time
	Stale bool
}

// Input is everything a run's state is derived from.
type Input struct {
	Run uint32
	// Observations of the run: its own (by run number), the IOVs carrying its harvested payload hashes or
	// pointing into it by since, and the operators' overrides. Order and duplicates do not matter.
	// Reconcile only reads them: the agency hands the same slice to the reconciles of a run until one
	// of its facts changes.
	Observations []pcl.Observation
	Catalogue    *pcl.Catalogue
	Policy       pcl.Policy
	Sources      map[pcl.Source]SourceView
	// FCSR is the newest first condition-safe run Tier-0 reported (0 if none yet).
	FCSR uint32
	Now  time.Time
	// Synchronizations are condition DB tags' TAG.SYNCHRONIZATION as the conddb spy last reported
	// them, for the tags of which the run's own observations hold no IOV naming it (a failed upload to
	// an hlt tag leaves the run without one). A synchronization is the tag's, not the run's; without
	// it a tag counts as gating PromptReco.
	Synchronizations map[string]string
}

// Reconcile derives the run's state. The result's Decision has no Version or Decided time: the store
// gives those when the decision changes.
func Reconcile(in Input) pcl.RunState {
	f := index(in)
	rs := pcl.RunState{Run: in.Run, Info: f.info}
	if f.info != nil {
		rs.Class = f.info.Class
	}
	cp := in.Policy.For(rs.Class)
	d := deriver{in: in, f: f, cp: cp, harvestScan: in.Sources[pcl.SourceHarvest].View}
	if f.stopped() {
		rs.Deadline = f.info.Stop.Add(cp.RunDeadline)
		d.wfDeadline = f.info.Stop.Add(cp.WorkflowDeadline) // the same for every workflow
		d.runLength = f.info.Duration()
		d.harvestTimeout = f.info.Stop.Add(AlcaHarvestTimeout)
	}
	ws := in.Catalogue.Workflows()
	rs.Workflows = make([]pcl.WorkflowStatus, len(ws))
	// The workflows' file and hash lists are the two parts of one allocation per run, sized by index:
	// each input's latest file is one file and its payloads of one workflow.
	shared := make([]string, f.nFiles+f.nHashes)
	d.files, d.hashes = shared[:f.nFiles], shared[f.nFiles:]
	for i := range ws {
		d.workflow(i, &ws[i], &rs.Workflows[i])
	}
	var ev evRange
	rs.Decision, ev = d.decide(&rs)
	d.fileEvidence(&rs, ev)
	rs.NextWake = d.nextWake(&rs)
	if d.waitsHarvest && rs.Decision.State != pcl.ReadinessReleased {
		rs.WaitsFor = []pcl.Source{pcl.SourceHarvest}
	}
	f.recycle()
	return rs
}

// facts is the run's observations sorted into what the rules ask about. Every slot keeps the newest
// (or earliest) fact by time, ties broken by compare, so that arrival order and duplicates cannot matter.
// Facts live in a few flat slices indexed by the catalogue's dense indices rather than in maps: the
// reconcile runs for every touched run on every batch, and allocation was most of its cost.
type facts struct {
	run       uint32
	cat       *pcl.Catalogue
	obs       []pcl.Observation
	info      *pcl.RunInfo
	infoObs   *pcl.Observation
	streams   []streamFacts    // the run's express streams, in the order first seen
	wfStreams []uint32         // by workflow: bit i set when streams[i] runs the workflow
	release   *pcl.Observation // the first release
	inputs    []inputFacts     // by catalogue input index
	links     []int32          // by observation: lists of markers and statuses per input (the next one, or -1)
	quality   []*pcl.Observation
	// iovs holds, by catalogue destination index, the winning IOV at each since, as indices into obs
	// (no pointer written for each IOV filed, and nothing to clear for the GC's sake in recycle).
	iovs      [][]int32
	otherIOVs map[string][]int32
	// syncs holds, by catalogue destination index, 1 + the index into obs of the tag's newest IOV that
	// names its synchronization (0 for none); otherSyncs the same for tags outside the catalogue.
	syncs      []int32
	otherSyncs map[string]int32
	overrides  []*pcl.Observation
	// ev is scratch for the sequence numbers the workflows' states and the decision rest on, copied
	// into the result once all are known (one allocation per run); wfEv is each workflow's range of it.
	ev   []int64
	wfEv []evRange
	// nFiles and nHashes count the inputs with a file and their latest files' payloads: what the
	// workflows' Files and Hashes lists hold at most.
	nFiles, nHashes int
}

// thread puts observation i at the head of a list.
func (f *facts) thread(head *int32, i int) {
	f.links[i] = *head
	*head = int32(i)
}

// streamFacts is what Tier-0 said of one express stream of the run.
type streamFacts struct {
	name   string
	config *pcl.Observation // the newest express_config
	done   *pcl.Observation // the first stream-done seen
}

// inputFacts is what the harvest area and the upload log showed of one input tag. It holds indices
// into obs, not pointers: filing an observation then writes no pointer into the pooled facts (a write
// barrier while the GC marks), and recycle clears the slice as plain memory.
type inputFacts struct {
	latest   int32 // 1 + index into obs of the newest harvest file, 0 for none (see facts.latest)
	files    int32 // distinct harvest files seen (a re-harvest shows as more than one)
	markers  int32 // head of the list of upload markers (index into obs), -1 for none
	statuses int32 // head of the list of upload-log records, -1 for none
	// marker is 1 + index into obs of the first upload marker of the latest file. Once index knows the
	// latest file, the lists keep only that file's markers and records (see pruneInput).
	marker int32
}

func (f *facts) stopped() bool { return f.info != nil && f.info.Stop != nil }

// at is the observation at 1 + index i, nil for 0.
func (f *facts) at(i int32) *pcl.Observation {
	if i == 0 {
		return nil
	}
	return &f.obs[i-1]
}

// latest returns the input's newest harvest file, nil if none.
func (f *facts) latest(in *inputFacts) *pcl.Observation { return f.at(in.latest) }

// pruneInput keeps, of an input's lists, the markers and records of its latest file, and finds its
// first marker. Only the latest file's ever count, and they are asked about several times per reconcile
// (the state, the marker, the burst flag): pruning once decides for each element once.
func (f *facts) pruneInput(in *inputFacts) {
	l := latestName{file: f.latest(in).File}
	in.markers, in.statuses = f.prune(in.markers, &l), f.prune(in.statuses, &l)
	for i := in.markers; i >= 0; i = f.links[i] {
		if o := &f.obs[i]; in.marker == 0 || later(f.at(in.marker), o) {
			in.marker = i + 1
		}
	}
}

// prune keeps, of a list, the elements that name the latest file, in their order.
func (f *facts) prune(head int32, l *latestName) int32 {
	out := int32(-1)
	tail := &out
	for i := head; i >= 0; i = f.links[i] {
		if l.names(f.obs[i].File) {
			// The element before i that was kept now leads to i; i's own link is read by the loop
			// before a later kept element overwrites it.
			*tail, tail = i, &f.links[i]
		}
	}
	*tail = -1
	return out
}

// latestName is the name of an input's latest file, and its stem once known.
type latestName struct {
	file   string
	stem   string // the stem of file's base name; "" when it is no harvest file name
	parsed bool   // file was read
}

// names says whether a marker or upload record names the latest file: a name of the same upload (same
// stem). The spies report the .db's own name for all three kinds, so names need reading only where they
// differ; a name that is no harvest file name only names itself. A harvest name's stem is canonical (a
// run has no leading zero, the parts hold no '@' or '.'), so another name is of the same upload exactly
// when, after its directory, it is that stem and a harvest file's ending: what pcl.ParseHarvestName
// would say, without reading the whole name again.
func (l *latestName) names(file string) bool {
	if file == l.file {
		return true
	}
	if !l.parsed {
		base := baseName(l.file)
		if n, err := pcl.ParseHarvestName(base); err == nil {
			l.stem = base[:len(base)-len(n.Ext)]
		}
		l.parsed = true
	}
	if l.stem == "" {
		return false
	}
	base := baseName(file)
	if len(base) <= len(l.stem) || base[len(l.stem)] != '.' || base[:len(l.stem)] != l.stem {
		return false
	}
	switch pcl.HarvestExt(base[len(l.stem):]) {
	case pcl.HarvestDB, pcl.HarvestMetadata, pcl.HarvestUploaded:
		return true
	}
	return false
}

// harvestName reads a file name of the harvest area with pcl's one reader, after any directory.
func harvestName(file string) (pcl.HarvestName, bool) {
	n, err := pcl.ParseHarvestName(baseName(file))
	return n, err == nil
}

// baseName is a name after its last '/'. The spies report base names: the forward byte search finds
// that out fast, where the backward one would walk the whole name byte by byte.
func baseName(file string) string {
	if strings.IndexByte(file, '/') < 0 {
		return file
	}
	return file[strings.LastIndexByte(file, '/')+1:]
}

// marker returns the first upload marker of the input's latest file.
func (f *facts) marker(in *inputFacts) *pcl.Observation { return f.at(in.marker) }

// fileStatuses calls fn for each upload-log record of the input's latest file.
func (f *facts) fileStatuses(in *inputFacts, fn func(o *pcl.Observation)) {
	for i := in.statuses; i >= 0; i = f.links[i] {
		fn(&f.obs[i])
	}
}

// verdict returns the newest upload verdict of the input's latest file for a destination tag.
func (f *facts) verdict(in *inputFacts, tag string) *pcl.Observation {
	var v *pcl.Observation
	f.fileStatuses(in, func(o *pcl.Observation) {
		if o.Tag == tag && later(o, v) {
			v = o
		}
	})
	return v
}

// burst says whether a destination tag got more than one distinct upload of the latest file.
func (f *facts) burst(in *inputFacts) bool {
	for i := in.statuses; i >= 0; i = f.links[i] {
		a := &f.obs[i]
		for j := f.links[i]; j >= 0; j = f.links[j] {
			if b := &f.obs[j]; a.Tag == b.Tag && !a.At.Equal(b.At) {
				return true
			}
		}
	}
	return false
}

// stream returns the facts of a stream, adding it when new.
func (f *facts) stream(name string) *streamFacts {
	for i := range f.streams {
		if f.streams[i].name == name {
			return &f.streams[i]
		}
	}
	f.streams = append(f.streams, streamFacts{name: name})
	return &f.streams[len(f.streams)-1]
}

// later says whether a is after b in the canonical order.
func later(a, b *pcl.Observation) bool { return b == nil || compare(a, b) > 0 }

// inputTagOf is the input tag an upload record or marker is about: its own field, or the one its file
// name, Run<run>@<inputTag>@<uuid>.<ext>, gives.
func inputTagOf(o *pcl.Observation) string {
	if o.InputTag != "" {
		return o.InputTag
	}
	n, _ := harvestName(o.File)
	return n.InputTag
}

// index files each valid observation of the run under what it tells.
func index(in Input) *facts {
	cat := in.Catalogue
	nw := len(cat.Workflows())
	f := factsPool.Get().(*facts)
	f.run, f.cat, f.obs = in.Run, cat, in.Observations
	f.inputs = resize(f.inputs, cat.NumInputs())
	f.links = resize(f.links, len(in.Observations))
	f.quality = resize(f.quality, nw)
	f.wfStreams = resize(f.wfStreams, nw)
	f.wfEv = resize(f.wfEv, nw)
	f.syncs = resize(f.syncs, cat.NumDestinations())
	f.ev = f.ev[:0]
	for i := range f.inputs {
		f.inputs[i].markers, f.inputs[i].statuses = -1, -1
	}
	// Each destination tag keeps its bucket's array from run to run (the pool): no allocation.
	f.iovs = slices.Grow(f.iovs[:0], cat.NumDestinations())[:cat.NumDestinations()]
	for k := range f.iovs {
		f.iovs[k] = f.iovs[k][:0]
	}
	for i := range in.Observations {
		o := &in.Observations[i]
		if o.Validate() != nil {
			continue
		}
		switch o.Kind {
		case pcl.KindIOV:
			if k, ok := cat.DestinationIndex(o.Tag); ok {
				f.iovs[k] = append(f.iovs[k], int32(i))
				if o.Synchronization != "" && later(o, f.at(f.syncs[k])) {
					f.syncs[k] = int32(i + 1)
				}
			} else {
				if f.otherIOVs == nil {
					f.otherIOVs, f.otherSyncs = map[string][]int32{}, map[string]int32{}
				}
				f.otherIOVs[o.Tag] = append(f.otherIOVs[o.Tag], int32(i))
				if o.Synchronization != "" && later(o, f.at(f.otherSyncs[o.Tag])) {
					f.otherSyncs[o.Tag] = int32(i + 1)
				}
			}
			continue
		case pcl.KindUploadStatus:
			// The upload log names files, not always runs: match by file.
			if o.File == "" {
				continue
			}
			// Another run's record needs no catalogue lookup.
			if o.Run != in.Run && (o.Run != 0 || !runOfFile(o.File, in.Run)) {
				continue
			}
			if k, ok := cat.InputIndex(inputTagOf(o)); ok {
				f.thread(&f.inputs[k].statuses, i)
			}
			continue
		}
		if o.Run != in.Run {
			continue
		}
		switch o.Kind {
		case pcl.KindRun:
			// OMS updates a run as it goes; its last_update orders them, whatever order they came in.
			if f.infoObs == nil || o.RunInfo.LastUpdate.After(f.infoObs.RunInfo.LastUpdate) ||
				(o.RunInfo.LastUpdate.Equal(f.infoObs.RunInfo.LastUpdate) && later(o, f.infoObs)) {
				f.infoObs = o
			}
		case pcl.KindExpressConfig:
			if s := f.stream(o.Stream); later(o, s.config) {
				s.config = o
			}
		case pcl.KindStreamDone:
			if o.Done {
				if s := f.stream(o.Stream); s.done == nil || earlierSeen(o, s.done) {
					s.done = o
				}
			}
		case pcl.KindRelease:
			if f.release == nil || later(f.release, o) {
				f.release = o
			}
		case pcl.KindHarvestFile:
			if k, ok := cat.InputIndex(o.InputTag); ok {
				h := &f.inputs[k]
				latest := f.latest(h)
				if latest == nil || latest.File != o.File {
					h.files++ // an upper bound; duplicates of one name are rare and only feed a flag
				}
				if later(o, latest) {
					h.latest = int32(i + 1)
				}
			}
		case pcl.KindUploadMarker:
			if k, ok := cat.InputIndex(inputTagOf(o)); ok {
				f.thread(&f.inputs[k].markers, i)
			}
		case pcl.KindDQMQuality:
			if k, ok := cat.WorkflowIndex(o.Workflow); ok && later(o, f.quality[k]) {
				f.quality[k] = o
			}
		case pcl.KindOverride:
			f.overrides = append(f.overrides, o)
		}
	}
	for k := range f.inputs {
		in := &f.inputs[k]
		if in.latest == 0 {
			continue // nothing asks about the markers or records of an input without a file
		}
		f.nFiles, f.nHashes = f.nFiles+1, f.nHashes+len(f.latest(in).Payloads)
		f.pruneInput(in)
	}
	if f.infoObs != nil {
		ri := *f.infoObs.RunInfo // the result must not alias the caller's observation
		f.info = &ri
	}
	if len(f.streams) > 32 {
		f.streams = f.streams[:32] // a run has a handful of express streams; more is garbage
	}
	for si, s := range f.streams {
		if s.config == nil {
			continue
		}
		for _, p := range s.config.Producers {
			for _, wi := range cat.WorkflowsOfProducer(p) {
				if cat.Workflows()[wi].RunsIn(s.name) {
					f.wfStreams[wi] |= 1 << si
				}
			}
		}
	}
	for k := range f.iovs {
		// winners works in place: reslicing the bucket to itself updates only its length, where storing
		// the returned slice would write its pointer too (a write barrier while the GC marks).
		f.iovs[k] = f.iovs[k][:len(winners(f.obs, f.iovs[k]))]
	}
	for tag, list := range f.otherIOVs {
		f.otherIOVs[tag] = winners(f.obs, list)
	}
	return f
}

// factsPool keeps the per-run scratch space between reconciles: it is most of what a reconcile would
// otherwise allocate, and nothing in a result points into it.
var factsPool = sync.Pool{New: func() any { return &facts{} }}

// resize returns s with length n, reusing its array when large enough. Pooled arrays are all zero:
// recycle clears what a reconcile used.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// release clears every reference to the caller's observations and returns the scratch space.
func (f *facts) recycle() {
	clear(f.inputs)
	clear(f.links)
	clear(f.quality)
	clear(f.wfStreams)
	clear(f.wfEv)
	clear(f.syncs)
	clear(f.streams[:cap(f.streams)]) // index may cut the list short
	clear(f.overrides)
	*f = facts{inputs: f.inputs[:0], links: f.links[:0], quality: f.quality[:0], wfStreams: f.wfStreams[:0],
		iovs: f.iovs, streams: f.streams[:0], overrides: f.overrides[:0], syncs: f.syncs[:0], ev: f.ev[:0],
		wfEv: f.wfEv[:0]}
	factsPool.Put(f)
}

// configured says whether Tier-0's express configuration of any stream was seen.
func (f *facts) configured() bool {
	for _, s := range f.streams {
		if s.config != nil {
			return true
		}
	}
	return false
}

// earlierSeen orders stream-done facts by when the agency learnt them.
func earlierSeen(a, b *pcl.Observation) bool {
	if c := seenAt(a).Compare(seenAt(b)); c != 0 {
		return c < 0
	}
	return compare(a, b) < 0
}

// runOfFile says whether a harvest file name belongs to the run; a name of another form is taken as the
// run's, since the record was selected for it (and without an input tag it is dropped anyway).
func runOfFile(file string, run uint32) bool {
	n, ok := harvestName(file)
	return !ok || n.Run == run
}

// winners keeps, of one tag's IOVs, the row inserted last at each since, ordered by since: several rows
// can share a since and the newest insertion wins (cms-interfaces.md §3.1). A tag's list is short.
// iovs are indices into obs.
func winners(obs []pcl.Observation, iovs []int32) []int32 {
	if len(iovs) < 2 {
		return iovs
	}
	slices.SortFunc(iovs, func(i, j int32) int {
		a, b := &obs[i], &obs[j]
		if c := cmp.Compare(a.Since, b.Since); c != 0 {
			return c
		}
		if c := b.Inserted.Compare(a.Inserted); c != 0 {
			return c
		}
		return strings.Compare(b.Payload, a.Payload)
	})
	w := 0
	for i, o := range iovs {
		if i > 0 && obs[iovs[i-1]].Since == obs[o].Since {
			continue
		}
		iovs[w] = o
		w++
	}
	return iovs[:w]
}

// compare is a total order on observations by time and then by every field that tells facts apart, so
// that sorting is deterministic and two observations that compare equal are the same fact. It returns at
// the first difference: most observations differ in time or kind.
func compare(a, b *pcl.Observation) int {
	if c := a.At.Compare(b.At); c != 0 {
		return c
	}
	if a.Kind != b.Kind {
		return strings.Compare(string(a.Kind), string(b.Kind))
	}
	if a.Run != b.Run {
		return cmp.Compare(a.Run, b.Run)
	}
	for _, p := range [...][2]string{{a.File, b.File}, {a.Tag, b.Tag}, {a.Payload, b.Payload}, {a.Stream, b.Stream},
		{string(a.Status), string(b.Status)}, {a.Workflow, b.Workflow}, {a.InputTag, b.InputTag}, {a.Dataset, b.Dataset},
		{string(a.Quality), string(b.Quality)}, {string(a.Action), string(b.Action)}, {a.Actor, b.Actor},
		{a.Reason, b.Reason}, {a.FileHash, b.FileHash}, {a.Info, b.Info}, {a.Previous, b.Previous},
		{a.Synchronization, b.Synchronization}, {string(a.Source), string(b.Source)}} {
		if p[0] != p[1] {
			return strings.Compare(p[0], p[1])
		}
	}
	if a.Since != b.Since {
		return cmp.Compare(a.Since, b.Since)
	}
	if c := a.Inserted.Compare(b.Inserted); c != 0 {
		return c
	}
	if a.Done != b.Done {
		return boolCompare(a.Done, b.Done)
	}
	if a.Prep != b.Prep {
		return boolCompare(a.Prep, b.Prep)
	}
	if c := slices.Compare(a.Producers, b.Producers); c != 0 {
		return c
	}
	switch a.Kind {
	case pcl.KindRun:
		return compareRunInfo(a.RunInfo, b.RunInfo)
	case pcl.KindHarvestFile:
		if c := slices.Compare(a.Destinations, b.Destinations); c != 0 {
			return c
		}
		return slices.CompareFunc(a.Payloads, b.Payloads, func(x, y pcl.IOV) int {
			if x.Since != y.Since {
				return cmp.Compare(x.Since, y.Since)
			}
			return strings.Compare(x.Payload, y.Payload)
		})
	}
	return 0
}

func compareRunInfo(a, b *pcl.RunInfo) int {
	stop := func(r *pcl.RunInfo) time.Time {
		if r.Stop == nil {
			return time.Time{}
		}
		return *r.Stop
	}
	return cmp.Or(a.LastUpdate.Compare(b.LastUpdate), stop(a).Compare(stop(b)), a.Start.Compare(b.Start),
		strings.Compare(a.Class, b.Class), cmp.Compare(a.Lumis, b.Lumis), cmp.Compare(a.BField, b.BField),
		slices.Compare(a.Components, b.Components))
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// seenAt is when the agency learnt the fact; absence-based rules compare it with source poll times,
// which are on the agency's clock too.
func seenAt(o *pcl.Observation) time.Time {
	if o.Seen.IsZero() {
		return o.At
	}
	return o.Seen
}

func clock(t time.Time) string {
	var buf [16]byte
	return string(t.UTC().AppendFormat(buf[:0], "Jan 2 15:04"))
}
