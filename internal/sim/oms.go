package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// omsRuns serves /agg/api/v1/runs in OMS's JSON:API shape (cms-interfaces.md §7; the 2025 fixture
// test_oms_runs.json): filters on run_number and start_time, sort, page[limit]/page[offset], links and meta.
func (s *Sim) omsRuns(rw http.ResponseWriter, req *http.Request, now time.Time) {
	q := req.URL.Query()
	keep := func(*run) bool { return true }
	for key, vals := range q {
		switch {
		case key == "sort" || key == "page[limit]" || key == "page[offset]" || key == "fields[runs]":
		case strings.HasPrefix(key, "filter["):
			f, err := omsFilter(key, vals[0])
			if err != nil {
				omsError(rw, err.Error())
				return
			}
			prev := keep
			keep = func(r *run) bool { return prev(r) && f(r) }
		default:
			omsError(rw, fmt.Sprintf("unsupported query parameter %s", key))
			return
		}
	}
	limit, offset, err := paging(q)
	if err != nil {
		omsError(rw, err.Error())
		return
	}
	var runs []*run
	for _, r := range s.w.runs {
		if keep(r) {
			runs = append(runs, r)
		}
	}
	switch q.Get("sort") {
	case "", "run_number":
	case "-run_number":
		slices.Reverse(runs)
	default:
		omsError(rw, fmt.Sprintf("sort: unsupported field %q", q.Get("sort")))
		return
	}
	total := len(runs)
	page := runs[min(offset, total):min(offset+limit, total)]
	base := "http://" + req.Host + req.URL.Path
	data := make([]any, 0, len(page))
	for _, r := range page {
		data = append(data, s.omsRun(r, base, now))
	}
	link := func(off int) any {
		if off < 0 || off >= total && off != 0 {
			return nil
		}
		lq := url.Values{}
		for k, v := range q {
			lq[k] = v
		}
		lq.Set("page[offset]", strconv.Itoa(off))
		lq.Set("page[limit]", strconv.Itoa(limit))
		return base + "?" + lq.Encode()
	}
	lastOff := 0
	if total > 0 {
		lastOff = (total - 1) / limit * limit
	}
	prev := any(nil)
	if offset > 0 {
		prev = link(max(0, offset-limit))
	}
	doc := map[string]any{
		"data":  data,
		"links": map[string]any{"first": link(0), "last": link(lastOff), "next": link(offset + limit), "prev": prev},
		"meta":  map[string]any{"totalResourceCount": total},
	}
	writeJSON(rw, doc)
}

// omsFilter is one filter parameter: filter[ATTR][OP] or, as OMS writes it in its own links,
// filter[runs][ATTR][OP], on run_number (a number) or start_time (RFC 3339), with OMS's operators EQ,
// NEQ, GE, GT, LE and LT.
func omsFilter(key, val string) (func(*run) bool, error) {
	parts := strings.Split(strings.TrimSuffix(strings.TrimPrefix(key, "filter["), "]"), "][")
	if len(parts) == 3 && parts[0] == "runs" {
		parts = parts[1:]
	}
	if len(parts) != 2 {
		return nil, fmt.Errorf("%s: not filter[attribute][operator]", key)
	}
	attr, op := parts[0], parts[1]
	var cmp func(*run) int
	switch attr {
	case "run_number":
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a number", key, val)
		}
		cmp = func(r *run) int { return compare(uint64(r.Number), n) }
	case "start_time":
		t, err := time.Parse(time.RFC3339, val)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an RFC 3339 time", key, val)
		}
		cmp = func(r *run) int { return r.Start.Truncate(time.Second).Compare(t) }
	default:
		return nil, fmt.Errorf("%s: unsupported filter attribute %s", key, attr)
	}
	var ok func(int) bool
	switch op {
	case "EQ":
		ok = func(c int) bool { return c == 0 }
	case "NEQ":
		ok = func(c int) bool { return c != 0 }
	case "GE":
		ok = func(c int) bool { return c >= 0 }
	case "GT":
		ok = func(c int) bool { return c > 0 }
	case "LE":
		ok = func(c int) bool { return c <= 0 }
	case "LT":
		ok = func(c int) bool { return c < 0 }
	default:
		return nil, fmt.Errorf("%s: unknown operator %s", key, op)
	}
	return func(r *run) bool { return ok(cmp(r)) }, nil
}

func compare(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func paging(q url.Values) (limit, offset int, err error) {
	limit, offset = 100, 0
	if v := q.Get("page[limit]"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 10000 {
			return 0, 0, fmt.Errorf("page[limit]: %q is not a number in 1..10000", v)
		}
	}
	if v := q.Get("page[offset]"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			return 0, 0, fmt.Errorf("page[offset]: %q is not a non-negative number", v)
		}
	}
	return limit, offset, nil
}

// omsRun is one run as OMS gives it, with the attributes of the real reply.
func (s *Sim) omsRun(r *run, base string, now time.Time) map[string]any {
	p := s.w.p
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	var end any
	stop, lastUpdate := now, now.Truncate(time.Second)
	if r.stopped {
		end, stop = ts(r.Stop), r.Stop
		if lastUpdate = r.Stop.Add(2 * time.Minute); lastUpdate.After(now) {
			lastUpdate = now.Truncate(time.Second)
		}
	}
	dur := stop.Sub(r.Start)
	secs := dur.Seconds()
	delivered := 0.0
	if r.StableBeam {
		delivered = secs * 0.018 // pb^-1 at about 1.8e34 cm^-2 s^-1
	}
	party := any(nil)
	switch r.FillType {
	case "PROTONS":
		party = "PROTON"
	case "PB":
		party = "PB82"
	}
	fill := any(nil)
	if r.Fill != nil {
		fill = *r.Fill
	}
	mode := strings.Split(strings.TrimPrefix(r.L1Key, "l1_trg_"), "/")[0]
	attrs := map[string]any{
		"run_number": r.Number, "start_time": ts(r.Start), "end_time": end, "duration": int(secs),
		"fill_number": fill, "b_field": r.BField, "energy": r.Energy, "era": fmt.Sprintf("Run%d%s", p.YearAt(r.Start), p.EraLetter),
		"sequence": "GLOBAL-RUN", "hlt_key": r.HLTKey, "l1_key": r.L1Key, "l1_key_stripped": strings.TrimPrefix(r.L1Key, "l1_trg_"),
		"l1_hlt_mode": mode, "l1_hlt_mode_stripped": mode + "/v33", "trigger_mode": "l1_hlt_" + mode + "/v33",
		"fill_type_runtime": r.FillType, "fill_type_party1": party, "fill_type_party2": party,
		"stable_beam": r.StableBeam, "components": r.Components, "components_out": []string{},
		"last_lumisection_number": p.Lumis(dur), "last_update": ts(lastUpdate), "tier0_transfer": true,
		"cmssw_version": "CMSSW_16_0_2", "clock_type": "LHC", "delivered_lumi": delivered, "recorded_lumi": delivered * 0.93,
		"init_lumi": 0.0, "end_lumi": 0.0, "l1_menu": fmt.Sprintf("L1Menu_Collisions%d_v1_0_0", p.YearAt(r.Start)),
		"l1_rate": 100000.0, "hlt_physics_rate": 1800.0, "hlt_physics_counter": int(secs * 1800),
		"l1_triggers_counter": int(secs * 100000), "hlt_physics_size": 2.1, "hlt_physics_throughput": 3.8,
		"beamactive_total_deadtime": 1.2, "initial_prescale_index": 2, "crossing_angle_start": nil,
		"crossing_angle_stop": nil, "beta_star_start": nil, "beta_star_stop": nil,
	}
	self := strings.TrimSuffix(base, "/") + "/" + strconv.FormatUint(uint64(r.Number), 10)
	rel := func(name string) map[string]any {
		return map[string]any{"links": map[string]any{"self": self + "/relationships/" + name, "related": self + "/" + name}}
	}
	return map[string]any{
		"id": strconv.FormatUint(uint64(r.Number), 10), "type": "runs", "attributes": attrs,
		"relationships": map[string]any{"fill": rel("fill"), "lumisections": rel("lumisections")},
		"links":         map[string]any{"self": self},
		"meta": map[string]any{"row": map[string]any{"delivered_lumi": map[string]any{"units": "pb^{-1}"},
			"recorded_lumi": map[string]any{"units": "pb^{-1}"}}},
	}
}

func omsError(rw http.ResponseWriter, detail string) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(rw).Encode(map[string]any{"errors": []any{map[string]any{"status": "400", "title": "Bad Request", "detail": detail}}})
}

func writeJSON(rw http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(rw, "sim: "+err.Error(), http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.Write(b)
}
