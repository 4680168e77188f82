package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// dqmMemo holds what the DQM handlers would otherwise build again for every request, all of it a
// function of its key alone: the GUI's replies are the same bytes, made once. The DQM spy asks for
// every open run's samples and every harvested workflow's folder every ten minutes, and formatting
// the same names and encoding the same folders was most of the simulator's own cost in a study.
type dqmMemo struct {
	datasets map[dqmKey]string         // (year, stream, workflow) → ALCAPROMPT dataset
	regexps  map[string]*regexp.Regexp // a match parameter → its compiled form
	folders  map[string][]byte         // folder and quality codes → the archive reply
}

type dqmKey struct {
	year             int
	stream, workflow string
}

// dqmDataset is the ALCAPROMPT harvesting dataset of a workflow of a run that started at start
// (cms-interfaces.md §6), e.g. /StreamExpress/Run2026A-PromptCalibProdSiStripGains-Express-v1/ALCAPROMPT.
func (s *Sim) dqmDataset(start time.Time, w WorkflowTruth) string {
	key := dqmKey{s.w.p.YearAt(start), w.Stream, w.Workflow}
	if d, ok := s.dqm.datasets[key]; ok {
		return d
	}
	wf, _ := s.w.cat.Workflow(w.Workflow)
	d := fmt.Sprintf("/Stream%s/Run%d%s-%s-Express-v1/ALCAPROMPT", w.Stream, key.year, s.w.p.EraLetter, wf.Producer)
	if s.dqm.datasets == nil {
		s.dqm.datasets = map[dqmKey]string{}
	}
	s.dqm.datasets[key] = d
	return d
}

// exactRun matches the run parameter the DQM spy sends, ^<run>$, which only that run's number
// matches: the handler then looks the run up instead of trying the pattern on every run.
var exactRun = regexp.MustCompile(`^\^([1-9][0-9]{0,9})\$$`)

// compiled is compileParam, remembered.
func (s *Sim) compiled(v string) (*regexp.Regexp, error) {
	if re, ok := s.dqm.regexps[v]; ok {
		return re, nil
	}
	re, err := compileParam(v)
	if err != nil {
		return nil, err
	}
	if s.dqm.regexps == nil {
		s.dqm.regexps = map[string]*regexp.Regexp{}
	}
	if len(s.dqm.regexps) < 64 {
		s.dqm.regexps[v] = re
	}
	return re, nil
}

// dqmSamples serves the classic GUI's /data/json/samples?match=&run= (both regexps).
func (s *Sim) dqmSamples(rw http.ResponseWriter, req *http.Request, _ time.Time) {
	q := req.URL.Query()
	match, err := s.compiled(q.Get("match"))
	if err != nil {
		http.Error(rw, "match: "+err.Error(), http.StatusBadRequest)
		return
	}
	runs := s.w.runs
	var runRE *regexp.Regexp
	if m := exactRun.FindStringSubmatch(q.Get("run")); m != nil {
		n, err := strconv.ParseUint(m[1], 10, 32)
		runs = nil
		if r, ok := s.w.byNum[uint32(n)]; ok && err == nil {
			runs = []*run{r}
		}
	} else if runRE, err = s.compiled(q.Get("run")); err != nil {
		http.Error(rw, "run: "+err.Error(), http.StatusBadRequest)
		return
	}
	items := []any{}
	for _, r := range runs {
		rs := strconv.FormatUint(uint64(r.Number), 10)
		if runRE != nil && !runRE.MatchString(rs) {
			continue
		}
		var datasets []string
		for _, st := range r.Streams {
			if (st.Name == "Express" || st.Name == "ExpressCosmics" || st.Name == "HIExpress") && !st.ExpressDone.IsZero() && !s.w.now.Before(st.ExpressDone) {
				datasets = append(datasets, fmt.Sprintf("/Stream%s/Run%d%s-Express-v1/DQMIO", st.Name, s.w.p.YearAt(r.Start), s.w.p.EraLetter))
			}
		}
		for _, w := range r.Workflows {
			if w.Quality != nil {
				datasets = append(datasets, s.dqmDataset(r.Start, w))
			}
		}
		for _, d := range datasets {
			if match == nil || match.MatchString(d) {
				items = append(items, map[string]any{"type": "offline_data", "run": rs, "dataset": d, "version": "", "importversion": 1})
			}
		}
	}
	writeJSON(rw, map[string]any{"samples": []any{map[string]any{"type": "offline_data", "items": items}}})
}

func compileParam(v string) (*regexp.Regexp, error) {
	if v == "" {
		return nil, nil
	}
	if len(v) > 500 {
		return nil, fmt.Errorf("regexp longer than 500 characters")
	}
	return regexp.Compile(v)
}

// dqmArchive serves /data/json/archive/<run>/<PD>/<Proc>/<Tier>/<folder>: the folders of an ALCAPROMPT
// sample and, in AlCaReco/<workflow>, monitor elements with their quality-test results.
func (s *Sim) dqmArchive(rw http.ResponseWriter, req *http.Request, _ time.Time) {
	parts := strings.Split(strings.Trim(req.PathValue("path"), "/"), "/")
	if len(parts) < 4 {
		http.Error(rw, "want <run>/<PD>/<Proc>/<Tier>/<folder>", http.StatusNotFound)
		return
	}
	n, err := strconv.ParseUint(parts[0], 10, 32)
	r, ok := s.w.byNum[uint32(n)]
	if err != nil || !ok {
		http.Error(rw, "no such run", http.StatusNotFound)
		return
	}
	dataset := "/" + strings.Join(parts[1:4], "/")
	folder := strings.Join(parts[4:], "/")
	var wt *WorkflowTruth
	for i := range r.Workflows {
		if r.Workflows[i].Quality != nil && s.dqmDataset(r.Start, r.Workflows[i]) == dataset {
			wt = &r.Workflows[i]
		}
	}
	if wt == nil {
		http.Error(rw, "no such sample", http.StatusNotFound)
		return
	}
	switch folder {
	case "":
		writeJSON(rw, map[string]any{"contents": []any{map[string]any{"subdir": "AlCaReco"}}})
	case "AlCaReco":
		writeJSON(rw, map[string]any{"contents": []any{map[string]any{"subdir": wt.Workflow}}})
	case "AlCaReco/" + wt.Workflow:
		key := fmt.Sprint(folder, wt.Quality)
		b, ok := s.dqm.folders[key]
		if !ok {
			var err error
			if b, err = json.Marshal(map[string]any{"contents": monitorElements(folder, wt.Quality)}); err != nil {
				http.Error(rw, "sim: "+err.Error(), http.StatusInternalServerError)
				return
			}
			if s.dqm.folders == nil {
				s.dqm.folders = map[string][]byte{}
			}
			s.dqm.folders[key] = b
		}
		rw.Header().Set("Content-Type", "application/json")
		rw.Write(b)
	default:
		http.Error(rw, "no such folder", http.StatusNotFound)
	}
}

// monitorElements are a PCL folder's MEs: one per quality test, and an event count without tests.
func monitorElements(folder string, statuses []int) []any {
	var out []any
	for i, st := range statuses {
		name := fmt.Sprintf("fitResult%d", i)
		msg := map[int]string{100: "ok", 200: "result within warning range", 300: "result out of range", 30: "insufficient statistics"}[st]
		report := map[string]any{"alarm": 0, "error": b2i(st == 300), "warn": b2i(st == 200), "other": b2i(st == 30)}
		out = append(out, map[string]any{
			"obj": name, "path": folder + "/" + name,
			"properties": map[string]any{"kind": "TH1F", "type": "histogram", "lumisect": "0", "report": report},
			"qresults": []any{map[string]any{"status": st, "result": map[int]float64{100: 1, 200: 0.7, 300: 0.1, 30: 0}[st],
				"name": "MeanWithinExpected", "algorithm": "MeanWithinExpected", "message": msg}},
			"nentries": 15000, "stats": map[string]any{}, "rootobj": "",
		})
	}
	out = append(out, map[string]any{"obj": "nEvents", "path": folder + "/nEvents",
		"properties": map[string]any{"kind": "INT", "type": "int", "lumisect": "0",
			"report": map[string]any{"alarm": 0, "error": 0, "warn": 0, "other": 0}}, "nentries": 1, "value": "15000"})
	return out
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
