package sim

import (
	"slices"
	"time"
)

// Outcome is what a workflow's AlcaHarvest really did for a run.
type Outcome string

const (
	OutcomePayload   Outcome = "payload"    // wrote a .db/.txt pair per input tag
	OutcomeNoPayload Outcome = "no-payload" // ran and wrote nothing (too few events, failed fit)
	OutcomeMissing   Outcome = "missing"    // never ran to the end (a fault): no file, ever
)

// RunTruth is everything that really happened to a run, for tests and the study: what the agency
// should find out by spying.
type RunTruth struct {
	RunPlan
	Class      string
	Configured time.Time // express_config answers from then on
	Streams    []StreamTruth
	Workflows  []WorkflowTruth
	Locked     time.Time // reco_locked.locked = 1 (zero: not yet)
	Released   time.Time // reco_config rows written (zero: not yet)
	RecoDone   time.Time // run_dataset_done true
}

// StreamTruth is one express stream of a run.
type StreamTruth struct {
	Name        string
	Producers   []string // alca_skim: the PCL producers of the catalogue that run in it, and a few others
	ExpressDone time.Time
	Done        time.Time // run_stream_done true from then on (zero: not yet)
}

// WorkflowTruth is one PCL workflow of a run.
type WorkflowTruth struct {
	Workflow  string
	Stream    string
	Outcome   Outcome
	HarvestAt time.Time // when AlcaHarvest runs (zero for missing)
	Harvested bool
	Files     []FileTruth // one per input tag, once harvested with a payload
	Quality   []int       // DQM quality-test statuses shown (nil: no DQM sample)
}

// FileTruth is one harvested payload file and its upload.
type FileTruth struct {
	Name        string // Run<run>@<inputTag>@<uuid>.db
	InputTag    string
	PayloadHash string
	Since       uint64
	Harvested   time.Time
	FileHash    string    // the upload's SHA-1
	Uploaded    time.Time // .txt.uploaded written (zero: not yet)
	Tags        []TagTruth
}

// TagTruth is the dropBox's verdict for one destination tag of an upload.
type TagTruth struct {
	Tag    string
	Status string // ok, skip, fail, too-late ("" while the dropBox has not processed it)
	Info   string
	Logged time.Time
	Since  uint64    // the since appended (after any move up to the FCSR); 0 when nothing was
	InDB   time.Time // INSERTION_TIME of the IOV, zero when nothing was appended
}

// InDB says when the workflow's payloads were in every destination tag, and whether they all are.
func (w WorkflowTruth) InDB() (time.Time, bool) {
	if w.Outcome != OutcomePayload || !w.Harvested {
		return time.Time{}, false
	}
	var last time.Time
	for _, f := range w.Files {
		for _, t := range f.Tags {
			if t.InDB.IsZero() {
				return time.Time{}, false
			}
			if t.InDB.After(last) {
				last = t.InDB
			}
		}
	}
	return last, true
}

// Release is one PromptReco release by the Tier-0 stub.
type Release struct {
	Run      uint32
	Locked   time.Time
	Released time.Time
	Datasets []string
	// ByAgency says the agency's pull API allowed it; false means the fixed delay did.
	ByAgency bool
}

func (r *RunTruth) clone() RunTruth {
	c := *r
	c.Components = slices.Clone(r.Components)
	c.Streams = slices.Clone(r.Streams)
	for i := range c.Streams {
		c.Streams[i].Producers = slices.Clone(r.Streams[i].Producers)
	}
	c.Workflows = slices.Clone(r.Workflows)
	for i, w := range r.Workflows {
		c.Workflows[i].Quality = slices.Clone(w.Quality)
		c.Workflows[i].Files = slices.Clone(w.Files)
		for j, f := range w.Files {
			c.Workflows[i].Files[j].Tags = slices.Clone(f.Tags)
		}
	}
	if r.Fill != nil {
		f := *r.Fill
		c.Fill = &f
	}
	return c
}
