package tier0

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/cms-pcl/spyagency/internal/t0envelope"
)

// ExpressConfig is one row of express_config: how Tier-0 processes one express stream of a run. Only the
// fields the agency uses are typed; the rest are ignored so that the service may change them.
type ExpressConfig struct {
	Run       uint64 `json:"run"`
	Stream    string `json:"stream"`
	CMSSW     string `json:"cmssw"`
	AlcaSkim  string `json:"alca_skim"`
	GlobalTag string `json:"global_tag"`
	Scenario  string `json:"scenario"`
}

// Producers splits alca_skim, a comma list of AlCaReco producers, dropping blanks.
func (e ExpressConfig) Producers() []string {
	var out []string
	for _, p := range strings.Split(e.AlcaSkim, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// RecoConfig is one row of reco_config; its existence means PromptReco was released for the run and
// primary dataset.
type RecoConfig struct {
	Run            uint64 `json:"run"`
	PrimaryDataset string `json:"primary_dataset"`
	CMSSW          string `json:"cmssw"`
	GlobalTag      string `json:"global_tag"`
}

var (
	runRE  = regexp.MustCompile(`^[1-9][0-9]{1,6}$`)
	nameRE = regexp.MustCompile(`^[0-9_a-zA-Z]+$`)
)

// ValidRun says whether n is a run number as Tier-0 accepts them.
func ValidRun(n uint64) bool { return runRE.MatchString(strconv.FormatUint(n, 10)) }

// ValidName says whether s is a stream, dataset or producer name as Tier-0 accepts them.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// DecodeExpressConfig decodes an express_config reply and checks every row's run and names.
func DecodeExpressConfig(data []byte) ([]ExpressConfig, error) {
	rows, err := t0envelope.Decode[ExpressConfig](data)
	if err != nil {
		return nil, err
	}
	for i, r := range rows {
		if !ValidRun(r.Run) {
			return nil, fmt.Errorf("result[%d].run: %d is not a run number", i, r.Run)
		}
		if !ValidName(r.Stream) {
			return nil, fmt.Errorf("result[%d].stream: %q is not a stream name", i, r.Stream)
		}
		for _, p := range r.Producers() {
			if !ValidName(p) {
				return nil, fmt.Errorf("result[%d].alca_skim: %q is not a producer name", i, p)
			}
		}
	}
	return rows, nil
}

// DecodeRecoConfig decodes a reco_config reply and checks every row's run and dataset name.
func DecodeRecoConfig(data []byte) ([]RecoConfig, error) {
	rows, err := t0envelope.Decode[RecoConfig](data)
	if err != nil {
		return nil, err
	}
	for i, r := range rows {
		if !ValidRun(r.Run) {
			return nil, fmt.Errorf("result[%d].run: %d is not a run number", i, r.Run)
		}
		if !ValidName(r.PrimaryDataset) {
			return nil, fmt.Errorf("result[%d].primary_dataset: %q is not a dataset name", i, r.PrimaryDataset)
		}
	}
	return rows, nil
}

// DecodeFlag decodes the one-boolean replies (run_stream_done, promptreco_status). ok is false when the
// service answered an empty list: it does not know (yet).
func DecodeFlag(data []byte) (value, ok bool, err error) {
	vals, err := t0envelope.Decode[bool](data)
	if err != nil {
		return false, false, err
	}
	switch len(vals) {
	case 0:
		return false, false, nil
	case 1:
		return vals[0], true, nil
	}
	return false, false, fmt.Errorf("result: %d values, want one boolean", len(vals))
}

// DecodeFCSR decodes firstconditionsaferun. ok is false for an empty list.
func DecodeFCSR(data []byte) (run uint32, ok bool, err error) {
	vals, err := t0envelope.Decode[uint64](data)
	if err != nil {
		return 0, false, err
	}
	switch {
	case len(vals) == 0:
		return 0, false, nil
	case len(vals) > 1:
		return 0, false, fmt.Errorf("result: %d values, want one run", len(vals))
	case !ValidRun(vals[0]):
		return 0, false, fmt.Errorf("result[0]: %d is not a run number", vals[0])
	}
	return uint32(vals[0]), true, nil
}
