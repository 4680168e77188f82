package pcl

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Source names one CMS system that a spy watches. The names are a contract (design.md): `probe` takes
// them on its command line and the API reports health under them.
type Source string

const (
	SourceTier0    Source = "tier0"    // Tier-0 Data Service (t0wmadatasvc)
	SourceHarvest  Source = "harvest"  // the AlcaHarvest output area on EOS
	SourceDropbox  Source = "dropbox"  // the conditions upload service's log
	SourceCondDB   Source = "conddb"   // the condition DB (CondDB v2)
	SourceDQM      Source = "dqm"      // the DQM GUI
	SourceOMS      Source = "oms"      // the Online Monitoring System
	SourceOperator Source = "operator" // a person acting through the API; not a spy
)

// Sources lists the spied sources in the order pages and tables show them.
var Sources = []Source{SourceOMS, SourceTier0, SourceHarvest, SourceDropbox, SourceCondDB, SourceDQM}

// ParseSource accepts a spied source's name.
func ParseSource(s string) (Source, error) {
	for _, src := range Sources {
		if string(src) == s {
			return src, nil
		}
	}
	return "", fmt.Errorf("unknown source %q (want one of tier0, harvest, dropbox, conddb, dqm, oms)", s)
}

// Kind is the kind of fact an observation states.
type Kind string

const (
	// KindRun: OMS reports a run (start, and stop once it ended); repeated when OMS updates it.
	KindRun Kind = "run"
	// KindExpressConfig: Tier-0 processes the run's express stream with these AlCaReco producers.
	KindExpressConfig Kind = "express-config"
	// KindStreamDone: Tier-0's run_stream_done for one express stream (true once processing, AlcaHarvest
	// and the condition upload task of that stream are finished).
	KindStreamDone Kind = "stream-done"
	// KindFCSR: Tier-0's first condition-safe run.
	KindFCSR Kind = "fcsr"
	// KindRelease: a reco_config row exists, so Tier-0 released PromptReco for the run.
	KindRelease Kind = "release"
	// KindHarvestFile: a Run<run>@<inputTag>@<uuid>.db/.txt pair appeared in the harvest area.
	KindHarvestFile Kind = "harvest-file"
	// KindUploadMarker: Tier-0 wrote <name>.txt.uploaded, so it sent the file to the dropBox.
	KindUploadMarker Kind = "upload-marker"
	// KindUploadStatus: the upload log's verdict for one file and destination tag.
	KindUploadStatus Kind = "upload-status"
	// KindIOV: an IOV row appended to a tag of the condition DB.
	KindIOV Kind = "iov"
	// KindDQMQuality: the DQM quality-test result of a workflow's harvesting output for a run.
	KindDQMQuality Kind = "dqm-quality"
	// KindOverride: an operator's override (release, hold, clear, accept).
	KindOverride Kind = "override"
)

// Kinds lists every observation kind.
var Kinds = []Kind{KindRun, KindExpressConfig, KindStreamDone, KindFCSR, KindRelease, KindHarvestFile,
	KindUploadMarker, KindUploadStatus, KindIOV, KindDQMQuality, KindOverride}

// RunInfo is what OMS knows of a run.
type RunInfo struct {
	Start      time.Time  `json:"start"`
	Stop       *time.Time `json:"stop,omitempty"` // nil while the run is ongoing
	Class      string     `json:"class,omitempty"`
	Fill       *int       `json:"fill,omitempty"` // OMS may give none
	BField     float64    `json:"b_field"`
	Lumis      int        `json:"lumisections,omitempty"`
	Era        string     `json:"era,omitempty"`
	Sequence   string     `json:"sequence,omitempty"`
	HLTKey     string     `json:"hlt_key,omitempty"`
	FillType   string     `json:"fill_type,omitempty"`
	StableBeam bool       `json:"stable_beam,omitempty"`
	Components []string   `json:"components,omitempty"`
	LastUpdate time.Time  `json:"last_update,omitzero"`
}

// Duration is the run's length, zero while it is ongoing.
func (r *RunInfo) Duration() time.Duration {
	if r == nil || r.Stop == nil {
		return 0
	}
	return r.Stop.Sub(r.Start)
}

// IOV is one interval of validity: a since and the payload valid from it.
type IOV struct {
	Since    uint64    `json:"since"`
	Payload  string    `json:"payload"`
	Inserted time.Time `json:"inserted,omitzero"`
}

// Observation is one fact that a spy saw. It is flat: Kind says which fields carry meaning. Its JSON form
// is what the store keeps and what `spyagency probe` prints, so field names are stable.
type Observation struct {
	Source Source    `json:"source"`
	Kind   Kind      `json:"kind"`
	Run    uint32    `json:"run,omitempty"`
	At     time.Time `json:"at"`            // when the fact happened, by the source's clock where it gives one
	Seen   time.Time `json:"seen,omitzero"` // when the spy saw it

	RunInfo *RunInfo `json:"run_info,omitempty"` // KindRun

	Stream    string   `json:"stream,omitempty"`    // KindExpressConfig, KindStreamDone
	Done      bool     `json:"done,omitempty"`      // KindStreamDone
	Producers []string `json:"producers,omitempty"` // KindExpressConfig: the alca_skim list
	Dataset   string   `json:"dataset,omitempty"`   // KindRelease: the primary dataset; KindDQMQuality: the DQM dataset

	Workflow     string   `json:"workflow,omitempty"`     // harvest, upload, DQM kinds: the catalogue's name
	InputTag     string   `json:"input_tag,omitempty"`    // the tag inside the harvested .db
	File         string   `json:"file,omitempty"`         // Run<run>@<inputTag>@<uuid>.db
	FileHash     string   `json:"file_hash,omitempty"`    // the upload's SHA-1
	Destinations []string `json:"destinations,omitempty"` // KindHarvestFile: destination tags from the metadata
	Payloads     []IOV    `json:"payloads,omitempty"`     // KindHarvestFile: the input tag's IOVs in the .db
	Prep         bool     `json:"prep,omitempty"`         // KindHarvestFile, KindUploadMarker: validation (prep) upload

	Tag      string       `json:"tag,omitempty"`       // KindUploadStatus, KindIOV: the destination tag
	Status   UploadStatus `json:"status,omitempty"`    // KindUploadStatus
	Info     string       `json:"info,omitempty"`      // KindUploadStatus: the log's text
	Since    uint64       `json:"since,omitempty"`     // KindIOV
	TimeType TimeType     `json:"time_type,omitempty"` // KindIOV: the tag's time type
	Inserted time.Time    `json:"inserted,omitzero"`   // KindIOV: INSERTION_TIME
	Payload  string       `json:"payload,omitempty"`   // KindIOV: PAYLOAD_HASH
	Previous string       `json:"previous,omitempty"`  // KindIOV: the payload of the IOV just below this since, if any
	// Synchronization is the tag's TAG.SYNCHRONIZATION (cms-interfaces.md §3.3) as the spy read it with
	// the row: whether a tag gates PromptReco follows from it (design.md, "Matching"). KindIOV.
	Synchronization string `json:"synchronization,omitempty"`

	Quality Quality `json:"quality,omitempty"` // KindDQMQuality

	Action OverrideAction `json:"action,omitempty"` // KindOverride
	Actor  string         `json:"actor,omitempty"`  // KindOverride
	Reason string         `json:"reason,omitempty"` // KindOverride

	// Seq is the store's sequence number of the fact, set when it is read from (or appended to) a
	// store; 0 elsewhere. It is not part of the fact: not in its key, its comparison or its JSON.
	Seq int64 `json:"-"`
}

// Key identifies the fact, so that the same fact seen twice (two polls, two spies, a restart) is stored
// once. It leaves out when the spy saw it and keeps what makes the fact distinct. It is KeySum in hex.
func (o *Observation) Key() string {
	sum := o.KeySum()
	return hex.EncodeToString(sum[:])
}

// KeySum is the fact's identity as 16 bytes: the first half of the SHA-256 of its distinct fields, each
// followed by a NUL. Stores keep it in binary; Key is the same in hex.
func (o *Observation) KeySum() [16]byte {
	var stack [512]byte
	b := stack[:0]
	w := func(p string) { b = append(append(b, p...), 0) }
	u := func(v uint64) { b = append(strconv.AppendUint(b, v, 10), 0) }
	ts := func(t time.Time) { b = append(t.UTC().AppendFormat(b, time.RFC3339Nano), 0) }
	w(string(o.Source))
	w(string(o.Kind))
	u(uint64(o.Run))
	switch o.Kind {
	case KindRun:
		if o.RunInfo != nil {
			ts(o.RunInfo.Start)
			if o.RunInfo.Stop != nil {
				ts(*o.RunInfo.Stop)
			} else {
				w("")
			}
			ts(o.RunInfo.LastUpdate)
			w(o.RunInfo.Class)
			b = append(strconv.AppendInt(b, int64(o.RunInfo.Lumis), 10), 0)
		}
	case KindExpressConfig:
		w(o.Stream)
		for i, p := range o.Producers {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, p...)
		}
		b = append(b, 0)
	case KindStreamDone:
		w(o.Stream)
		w(strconv.FormatBool(o.Done))
	case KindFCSR:
	case KindRelease:
		w(o.Dataset)
	case KindHarvestFile, KindUploadMarker:
		w(o.File)
		w(strconv.FormatBool(o.Prep))
	case KindUploadStatus:
		w(o.FileHash)
		w(o.File)
		w(o.Tag)
		w(string(o.Status))
		ts(o.At)
	case KindIOV:
		// An IOV row's identity is its primary key and payload. The synchronization is the tag's, not
		// the row's: a row read again after its tag changed synchronization is the same row, so the
		// first reading stays (and a store that held rows before the field existed stores none twice).
		w(o.Tag)
		u(o.Since)
		ts(o.Inserted)
		w(o.Payload)
	case KindDQMQuality:
		// The DQM GUI gives no time: the spy stamps the poll at which it saw the verdict change, and
		// sends a verdict only then. The time is part of the fact, so that a verdict that flips good →
		// bad → good is three facts and the newest one counts; without it the second "good" would be
		// the first one again, never stored, and the run would stay bad.
		w(o.Workflow)
		w(o.Dataset)
		w(string(o.Quality))
		ts(o.At)
	case KindOverride:
		w(string(o.Action))
		w(o.Workflow)
		w(o.Actor)
		w(o.Reason)
		ts(o.At)
	default:
		ts(o.At)
	}
	sum := sha256.Sum256(b)
	var k [16]byte
	copy(k[:], sum[:16])
	return k
}

// Validate reports the first thing that makes the observation unusable. Spies and the store call it so
// that garbage never reaches the reconcile.
func (o *Observation) Validate() error {
	if o.Source == "" {
		return fmt.Errorf("observation has no source")
	}
	if o.At.IsZero() {
		return fmt.Errorf("%s %s observation has no time", o.Source, o.Kind)
	}
	need := func(ok bool, field string) error {
		if !ok {
			return fmt.Errorf("%s %s observation of run %d: missing %s", o.Source, o.Kind, o.Run, field)
		}
		return nil
	}
	switch o.Kind {
	case KindRun:
		if err := need(o.Run > 0, "run"); err != nil {
			return err
		}
		if err := need(o.RunInfo != nil && !o.RunInfo.Start.IsZero(), "run_info.start"); err != nil {
			return err
		}
		// A stop before the start is garbage; taken as a very short run it would expect no calibration.
		if o.RunInfo.Stop != nil && o.RunInfo.Stop.Before(o.RunInfo.Start) {
			return fmt.Errorf("%s run observation of run %d: stop %s is before start %s", o.Source, o.Run,
				o.RunInfo.Stop.Format(time.RFC3339), o.RunInfo.Start.Format(time.RFC3339))
		}
		return nil
	case KindExpressConfig, KindStreamDone:
		if err := need(o.Run > 0, "run"); err != nil {
			return err
		}
		return need(o.Stream != "", "stream")
	case KindFCSR, KindRelease:
		return need(o.Run > 0, "run")
	case KindHarvestFile, KindUploadMarker:
		if err := need(o.Run > 0, "run"); err != nil {
			return err
		}
		if err := need(o.InputTag != "", "input_tag"); err != nil {
			return err
		}
		return need(o.File != "", "file")
	case KindUploadStatus:
		if err := need(o.Tag != "", "tag"); err != nil {
			return err
		}
		if err := need(o.File != "" || o.FileHash != "", "file or file_hash"); err != nil {
			return err
		}
		return need(o.Status.Valid(), "status (ok, skip, fail or too-late)")
	case KindIOV:
		if err := need(o.Tag != "", "tag"); err != nil {
			return err
		}
		if err := need(o.Payload != "", "payload"); err != nil {
			return err
		}
		return need(!o.Inserted.IsZero(), "inserted")
	case KindDQMQuality:
		if err := need(o.Run > 0, "run"); err != nil {
			return err
		}
		return need(o.Quality.Valid(), "quality")
	case KindOverride:
		if err := need(o.Run > 0, "run"); err != nil {
			return err
		}
		if err := need(o.Action.Valid(), "action (release, hold, clear or accept)"); err != nil {
			return err
		}
		if err := need(strings.TrimSpace(o.Reason) != "", "reason"); err != nil {
			return err
		}
		if o.Action == OverrideAccept {
			if err := need(o.Workflow != "", "workflow"); err != nil {
				return err
			}
		}
		return need(o.Actor != "", "actor")
	}
	return fmt.Errorf("%s observation has unknown kind %q", o.Source, o.Kind)
}

// UploadStatus is the upload log's verdict for one file and destination tag.
type UploadStatus string

const (
	UploadOK      UploadStatus = "ok"
	UploadSkip    UploadStatus = "skip" // nothing appended to that tag, by the tag's synchronization rules
	UploadFail    UploadStatus = "fail"
	UploadTooLate UploadStatus = "too-late" // the since fell below the first condition-safe run
)

// Valid says whether s is one of the four statuses.
func (s UploadStatus) Valid() bool {
	return s == UploadOK || s == UploadSkip || s == UploadFail || s == UploadTooLate
}

// Quality is DQM's second opinion on a calibration.
type Quality string

const (
	QualityUnknown Quality = "unknown"
	QualityGood    Quality = "good"
	QualityWarning Quality = "warning"
	QualityBad     Quality = "bad"
	// QualityInsufficient: every quality test of the workflow's folder gave the DQM code 30 (other:
	// insufficient statistics, cms-interfaces.md §6). It is the DQM GUI's word that the harvest ran and
	// found too few events, the evidence that confirms a no-payload (design.md, "No payload").
	QualityInsufficient Quality = "insufficient-statistics"
)

// Valid says whether q is one of the five qualities.
func (q Quality) Valid() bool {
	return q == QualityUnknown || q == QualityGood || q == QualityWarning || q == QualityBad || q == QualityInsufficient
}

// StatusInsufficient is the DQM quality-test status "other": the test could not judge, in the PCL
// harvesting folders because of too few entries (cms-interfaces.md §6).
const StatusInsufficient = 30

// QualityFromStatus maps a DQM quality-test status code (100 ok, 200 warning, 300 error, 30 other or
// too few entries) to a Quality. One test's 30 is unknown: only a folder all of whose tests say 30 is
// insufficient-statistics (the DQM spy's QualityOf).
func QualityFromStatus(code int) Quality {
	switch code {
	case 100:
		return QualityGood
	case 200:
		return QualityWarning
	case 300:
		return QualityBad
	}
	return QualityUnknown
}

// OverrideAction is what an operator asks of a run.
type OverrideAction string

const (
	OverrideRelease OverrideAction = "release" // force the run ready
	OverrideHold    OverrideAction = "hold"    // keep it from release
	OverrideClear   OverrideAction = "clear"   // undo release and hold (or an accept, when a workflow is named)
	OverrideAccept  OverrideAction = "accept"  // accept a workflow's bad terminal state
)

// Valid says whether a is one of the four actions.
func (a OverrideAction) Valid() bool {
	return a == OverrideRelease || a == OverrideHold || a == OverrideClear || a == OverrideAccept
}
