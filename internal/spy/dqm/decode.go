package dqm

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"

	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// Sample is one dataset the GUI holds for a run.
type Sample struct {
	Run     uint32
	Dataset string
}

// ME is one monitor element of a folder, with its quality-test status codes.
type ME struct {
	Name     string
	Statuses []int
}

// Folder is what the archive lists in one folder.
type Folder struct {
	Subdirs []string
	MEs     []ME
}

var datasetRE = regexp.MustCompile(`^(/[A-Za-z0-9_.-]+){3}$`)

// runNumber accepts a run as a JSON number or a string of digits: the classic GUI writes runs as strings,
// the new one as numbers.
type runNumber uint32

func (r *runNumber) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 || n > 9_999_999 {
		return fmt.Errorf("run %s is not a run number", b)
	}
	*r = runNumber(n)
	return nil
}

func checkSample(i int, run runNumber, dataset string) (Sample, error) {
	if run == 0 { // absent: UnmarshalJSON never ran
		return Sample{}, fmt.Errorf("sample %d: run missing", i)
	}
	if !datasetRE.MatchString(dataset) {
		return Sample{}, fmt.Errorf("sample %d: dataset %q is not /PD/Proc/Tier", i, dataset)
	}
	return Sample{Run: uint32(run), Dataset: dataset}, nil
}

// DecodeSamples decodes the classic GUI's /data/json/samples reply:
// {"samples": [{"type", "items": [{"type", "run", "dataset", ...}]}]}.
func DecodeSamples(data []byte) ([]Sample, error) {
	var doc struct {
		Samples *[]struct {
			Items []struct {
				Run     runNumber `json:"run"`
				Dataset string    `json:"dataset"`
			} `json:"items"`
		} `json:"samples"`
	}
	if err := httpx.DecodeBytes(data, &doc); err != nil {
		return nil, err
	}
	if doc.Samples == nil {
		return nil, fmt.Errorf("%w: no \"samples\" array in the reply", httpx.ErrDecode)
	}
	var out []Sample
	for _, group := range *doc.Samples {
		for _, it := range group.Items {
			s, err := checkSample(len(out), it.Run, it.Dataset)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// DecodeSamplesV1 decodes the new GUI's api/v1/samples reply: {"data": [{"run", "lumi", "dataset"}]}.
func DecodeSamplesV1(data []byte) ([]Sample, error) {
	var doc struct {
		Data *[]struct {
			Run     runNumber `json:"run"`
			Dataset string    `json:"dataset"`
		} `json:"data"`
	}
	if err := httpx.DecodeBytes(data, &doc); err != nil {
		return nil, err
	}
	if doc.Data == nil {
		return nil, fmt.Errorf("%w: no \"data\" array in the reply", httpx.ErrDecode)
	}
	out := make([]Sample, 0, len(*doc.Data))
	for i, d := range *doc.Data {
		s, err := checkSample(i, d.Run, d.Dataset)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// DecodeArchive decodes the classic GUI's /data/json/archive/... reply: {"contents": [...]} with folders
// as {"subdir"} and monitor elements as {"obj", "qresults": [{"status", ...}], ...}.
func DecodeArchive(data []byte) (Folder, error) {
	var doc struct {
		Contents *[]struct {
			Subdir   *string `json:"subdir"`
			Obj      *string `json:"obj"`
			QResults []struct {
				Status *int `json:"status"`
			} `json:"qresults"`
		} `json:"contents"`
	}
	if err := httpx.DecodeBytes(data, &doc); err != nil {
		return Folder{}, err
	}
	if doc.Contents == nil {
		return Folder{}, fmt.Errorf("%w: no \"contents\" array in the reply", httpx.ErrDecode)
	}
	var f Folder
	for i, c := range *doc.Contents {
		switch {
		case c.Subdir != nil:
			f.Subdirs = append(f.Subdirs, *c.Subdir)
		case c.Obj != nil:
			me := ME{Name: *c.Obj}
			for j, q := range c.QResults {
				if q.Status == nil {
					return Folder{}, fmt.Errorf("contents[%d].qresults[%d].status: missing", i, j)
				}
				me.Statuses = append(me.Statuses, *q.Status)
			}
			f.MEs = append(f.MEs, me)
		}
		// Other entries (the GUI's own bookkeeping) are ignored.
	}
	return f, nil
}

// DecodeArchiveV1 decodes the new GUI's api/v1/archive/... reply: {"data": [...]} with folders as
// {"subdir", "me_count"} and monitor elements as {"name", "path", "qtstatuses": [...], ...}.
func DecodeArchiveV1(data []byte) (Folder, error) {
	var doc struct {
		Data *[]struct {
			Subdir     *string `json:"subdir"`
			Name       *string `json:"name"`
			QTStatuses []int   `json:"qtstatuses"`
		} `json:"data"`
	}
	if err := httpx.DecodeBytes(data, &doc); err != nil {
		return Folder{}, err
	}
	if doc.Data == nil {
		return Folder{}, fmt.Errorf("%w: no \"data\" array in the reply", httpx.ErrDecode)
	}
	var f Folder
	for _, d := range *doc.Data {
		switch {
		case d.Subdir != nil:
			f.Subdirs = append(f.Subdirs, *d.Subdir)
		case d.Name != nil:
			f.MEs = append(f.MEs, ME{Name: *d.Name, Statuses: d.QTStatuses})
		}
	}
	return f, nil
}

// QualityOf is the folder's verdict: the worst quality-test result of its monitor elements, where bad is
// worse than warning, warning worse than unknown (a test that could not judge, status 30 or any other
// code) and unknown worse than good. A folder without any quality test is unknown. A folder whose every
// test says 30 (insufficient statistics) is insufficient-statistics: the harvest ran and found too few
// events, the DQM GUI's confirmation of a no-payload.
func QualityOf(f Folder) pcl.Quality {
	rank := map[pcl.Quality]int{pcl.QualityGood: 1, pcl.QualityUnknown: 2, pcl.QualityWarning: 3, pcl.QualityBad: 4}
	worst := pcl.QualityUnknown
	seen, allInsufficient := false, true
	for _, me := range f.MEs {
		for _, st := range me.Statuses {
			allInsufficient = allInsufficient && st == pcl.StatusInsufficient
			q := pcl.QualityFromStatus(st)
			if !seen || rank[q] > rank[worst] {
				worst, seen = q, true
			}
		}
	}
	if seen && allInsufficient {
		return pcl.QualityInsufficient
	}
	return worst
}
