package sim

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/t0envelope"
)

// The Tier-0 Data Service's parameter rules (cms-interfaces.md §2).
var (
	t0RunRE  = regexp.MustCompile(`^[1-9][0-9]{1,6}$`)
	t0NameRE = regexp.MustCompile(`^[0-9_a-zA-Z]+$`)
)

// t0CacheFor is how long the service lets clients cache a reply (Expires, cms-interfaces.md §2).
const t0CacheFor = 5 * time.Minute

// expressRow and recoRow keep the service's field order.
type expressRow struct {
	Run           uint32 `json:"run"`
	Stream        string `json:"stream"`
	CMSSW         string `json:"cmssw"`
	ScramArch     string `json:"scram_arch"`
	RecoCMSSW     any    `json:"reco_cmssw"`
	RecoScramArch any    `json:"reco_scram_arch"`
	AlcaSkim      string `json:"alca_skim"`
	DQMSeq        string `json:"dqm_seq"`
	GlobalTag     string `json:"global_tag"`
	Scenario      string `json:"scenario"`
	ProcVersion   int    `json:"proc_version"`
	Multicore     int    `json:"multicore"`
	WriteTiers    string `json:"write_tiers"`
	WriteDQM      int    `json:"write_dqm"`
}

type recoRow struct {
	Run            uint32 `json:"run"`
	PrimaryDataset string `json:"primary_dataset"`
	CMSSW          string `json:"cmssw"`
	ScramArch      string `json:"scram_arch"`
	AlcaSkim       string `json:"alca_skim"`
	PhysicsSkim    any    `json:"physics_skim"`
	DQMSeq         string `json:"dqm_seq"`
	NanoFlavour    string `json:"nano_flavour"`
	GlobalTag      string `json:"global_tag"`
	Scenario       string `json:"scenario"`
	ProcVersion    int    `json:"proc_version"`
	Multicore      int    `json:"multicore"`
	WriteReco      int    `json:"write_reco"`
	WriteDQM       int    `json:"write_dqm"`
	WriteAOD       int    `json:"write_aod"`
	WriteMiniAOD   int    `json:"write_miniaod"`
	WriteNanoAOD   int    `json:"write_nanoaod"`
}

const (
	cmssw     = "CMSSW_16_0_2"
	scramArch = "el9_amd64_gcc13"
)

func scenario(f Family, year int) string {
	switch f {
	case Cosmics:
		return "cosmicsEra_Run3"
	case HI:
		return fmt.Sprintf("ppEra_Run3_pp_on_PbPb_%d", year)
	}
	return fmt.Sprintf("ppEra_Run3_%d", year)
}

// tier0 serves /t0wmadatasvc/prod/<endpoint>.
func (s *Sim) tier0(rw http.ResponseWriter, req *http.Request, now time.Time) {
	params := t0Params{rw: rw, q: req.URL.Query()}
	runParam, nameParam := params.run, params.name
	var result []any
	switch ep := req.PathValue("endpoint"); ep {
	case "hello":
		result = []any{"world"}
	case "promptreco_status":
		result = []any{true}
	case "firstconditionsaferun":
		if f := s.w.t0.fcsr(); f > 0 {
			result = []any{f}
		}
	case "express_config":
		n, ok := runParam(false)
		st, ok2 := nameParam("stream", false)
		if !ok || !ok2 {
			return
		}
		result = s.expressConfig(n, st)
	case "reco_config":
		n, ok := runParam(false)
		pd, ok2 := nameParam("primary_dataset", false)
		if !ok || !ok2 {
			return
		}
		result = s.recoConfig(n, pd)
	case "run_config":
		n, ok := runParam(true)
		if !ok {
			return
		}
		if r, known := s.w.byNum[n]; known {
			result = []any{map[string]any{"run": n, "acq_era": fmt.Sprintf("Run%d%s", s.w.p.YearAt(r.Start), s.w.p.EraLetter)}}
		}
	case "run_stream_done":
		n, ok := runParam(true)
		st, ok2 := nameParam("stream", true)
		if !ok || !ok2 {
			return
		}
		if r, known := s.w.byNum[n]; known {
			if x := s.w.stream(r, st); x != nil {
				result = []any{!x.Done.IsZero()}
			}
		}
	case "run_dataset_done":
		n, ok := runParam(true)
		pd, ok2 := nameParam("primary_dataset", false)
		if !ok || !ok2 {
			return
		}
		if r, known := s.w.byNum[n]; known && (pd == "" || slices.Contains(r.datasets, pd)) {
			result = []any{!r.RecoDone.IsZero() && !now.Before(r.RecoDone)}
		}
	default:
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		http.Error(rw, "no such API: "+ep, http.StatusNotFound)
		return
	}
	writeT0(rw, now, result)
}

// t0Params reads and checks the service's query parameters; a bad one is answered with 400 and false.
type t0Params struct {
	rw http.ResponseWriter
	q  url.Values
}

func (p t0Params) run(required bool) (uint32, bool) {
	v := p.q.Get("run")
	if v == "" {
		if required {
			t0Error(p.rw, "run is required")
		}
		return 0, !required
	}
	if !t0RunRE.MatchString(v) {
		t0Error(p.rw, fmt.Sprintf("run %q is not a run number", v))
		return 0, false
	}
	n, _ := strconv.ParseUint(v, 10, 32)
	return uint32(n), true
}

func (p t0Params) name(key string, required bool) (string, bool) {
	v := p.q.Get(key)
	if v == "" {
		if required {
			t0Error(p.rw, key+" is required")
		}
		return "", !required
	}
	if !t0NameRE.MatchString(v) {
		t0Error(p.rw, fmt.Sprintf("%s %q is not a valid name", key, v))
		return "", false
	}
	return v, true
}

// runOrNewest is run n, or with n = 0 the newest run; nil unless has says it has what was asked for.
// The service's express_config and reco_config default to the newest run that has a row.
func (s *Sim) runOrNewest(n uint32, has func(*run) bool) *run {
	if n != 0 {
		if r := s.w.byNum[n]; r != nil && has(r) {
			return r
		}
		return nil
	}
	for i := len(s.w.runs) - 1; i >= 0; i-- {
		if has(s.w.runs[i]) {
			return s.w.runs[i]
		}
	}
	return nil
}

// expressConfig lists the configured express streams of a run (default: the newest configured run).
func (s *Sim) expressConfig(n uint32, stream string) []any {
	r := s.runOrNewest(n, func(r *run) bool { return !r.Configured.IsZero() })
	if r == nil {
		return nil
	}
	p := s.w.p
	gt := fmt.Sprintf("160X_dataRun3_Express_v%d", 1+int(r.Number%3))
	var out []any
	for _, st := range r.Streams {
		if stream != "" && st.Name != stream {
			continue
		}
		row := expressRow{Run: r.Number, Stream: st.Name, CMSSW: cmssw, ScramArch: scramArch, RecoCMSSW: cmssw,
			RecoScramArch: scramArch, AlcaSkim: strings.Join(st.Producers, ","), DQMSeq: "@none", GlobalTag: gt,
			Scenario: scenario(r.Family, p.YearAt(r.Start)), ProcVersion: 1, Multicore: 8, WriteTiers: "ALCARECO", WriteDQM: 0}
		if st.Name == "Express" || st.Name == "HIExpress" || st.Name == "ExpressCosmics" {
			row.DQMSeq, row.WriteTiers, row.WriteDQM = "@express", "FEVT,ALCARECO,DQMIO", 1
		}
		out = append(out, row)
	}
	return out
}

// recoConfig lists the released datasets of a run (default: the newest released run).
func (s *Sim) recoConfig(n uint32, pd string) []any {
	r := s.runOrNewest(n, func(r *run) bool { return !r.Released.IsZero() })
	if r == nil {
		return nil
	}
	var out []any
	for _, d := range r.datasets {
		if pd != "" && d != pd {
			continue
		}
		out = append(out, recoRow{Run: r.Number, PrimaryDataset: d, CMSSW: cmssw, ScramArch: scramArch, AlcaSkim: "",
			DQMSeq: "@common", NanoFlavour: "@PHYS", GlobalTag: "160X_dataRun3_Prompt_v1", Scenario: scenario(r.Family, s.w.p.YearAt(r.Start)),
			ProcVersion: 1, Multicore: 8, WriteDQM: 1, WriteAOD: 1, WriteMiniAOD: 1, WriteNanoAOD: 1})
	}
	return out
}

// writeT0 writes Tier-0's envelope (internal/t0envelope), cached for 5 minutes of simulated time.
func writeT0(rw http.ResponseWriter, now time.Time, result []any) {
	h := rw.Header()
	h.Set("Date", now.UTC().Format(http.TimeFormat))
	h.Set("Expires", now.Add(t0CacheFor).UTC().Format(http.TimeFormat))
	if err := t0envelope.Write(rw, result); err != nil {
		h.Del("Expires")
		http.Error(rw, "sim: "+err.Error(), http.StatusInternalServerError)
	}
}

func t0Error(rw http.ResponseWriter, msg string) {
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Header().Set("X-Error-Detail", msg)
	rw.WriteHeader(http.StatusBadRequest)
	rw.Write([]byte(msg + "\n"))
}
