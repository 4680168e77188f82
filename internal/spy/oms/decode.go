package oms

import (
	"fmt"
	"strconv"
	"time"

	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// Page is one decoded page of OMS runs.
type Page struct {
	Runs  []Run
	Next  string // links.next, "" when null or absent
	Total int    // meta.totalResourceCount, -1 when absent
}

// Run is one OMS run: its number and what the agency keeps of its attributes.
type Run struct {
	Number uint32
	Info   pcl.RunInfo
}

// attributes are the run attributes the agency reads; pointers tell null from absent-or-zero. Unknown
// attributes (OMS has dozens) are ignored.
type attributes struct {
	RunNumber  *uint64  `json:"run_number"`
	StartTime  *string  `json:"start_time"`
	EndTime    *string  `json:"end_time"`
	FillNumber *int     `json:"fill_number"`
	BField     *float64 `json:"b_field"`
	LastLumi   *int     `json:"last_lumisection_number"`
	Era        *string  `json:"era"`
	Sequence   *string  `json:"sequence"`
	HLTKey     *string  `json:"hlt_key"`
	FillType   *string  `json:"fill_type_runtime"`
	StableBeam *bool    `json:"stable_beam"`
	Components []string `json:"components"`
	LastUpdate *string  `json:"last_update"`
}

type document struct {
	Data *[]struct {
		ID         *string    `json:"id"`
		Type       string     `json:"type"`
		Attributes attributes `json:"attributes"`
	} `json:"data"`
	Links struct {
		Next *string `json:"next"`
	} `json:"links"`
	Meta struct {
		Total *int `json:"totalResourceCount"`
	} `json:"meta"`
}

// maxRun keeps run numbers to what a run number can be (CMS run numbers have at most 7 digits).
const maxRun = 9_999_999

// DecodeRuns decodes one page of the OMS runs endpoint. Required per run: run_number and start_time;
// end_time, fill_number, last_lumisection_number and era may be null. Errors name the run and field.
func DecodeRuns(data []byte) (Page, error) {
	var doc document
	if err := httpx.DecodeBytes(data, &doc); err != nil {
		return Page{}, err
	}
	if doc.Data == nil {
		return Page{}, fmt.Errorf("%w: no \"data\" array in the reply", httpx.ErrDecode)
	}
	p := Page{Total: -1}
	if doc.Links.Next != nil {
		p.Next = *doc.Links.Next
	}
	if doc.Meta.Total != nil {
		p.Total = *doc.Meta.Total
	}
	for i, d := range *doc.Data {
		r, err := toRun(d.Attributes)
		if err != nil {
			return Page{}, fmt.Errorf("data[%d]: %w", i, err)
		}
		if d.ID != nil && *d.ID != strconv.FormatUint(uint64(r.Number), 10) {
			return Page{}, fmt.Errorf("data[%d]: id %q does not match run_number %d", i, *d.ID, r.Number)
		}
		p.Runs = append(p.Runs, r)
	}
	return p, nil
}

func toRun(a attributes) (Run, error) {
	if a.RunNumber == nil || *a.RunNumber == 0 || *a.RunNumber > maxRun {
		return Run{}, fmt.Errorf("attributes.run_number: missing or not a run number")
	}
	n := uint32(*a.RunNumber)
	field := func(name string, err error) error {
		return fmt.Errorf("run %d: attributes.%s: %w", n, name, err)
	}
	if a.StartTime == nil {
		return Run{}, field("start_time", fmt.Errorf("missing"))
	}
	start, err := time.Parse(time.RFC3339, *a.StartTime)
	if err != nil {
		return Run{}, field("start_time", err)
	}
	info := pcl.RunInfo{Start: start.UTC(), Fill: a.FillNumber, Components: a.Components}
	if a.EndTime != nil {
		stop, err := time.Parse(time.RFC3339, *a.EndTime)
		if err != nil {
			return Run{}, field("end_time", err)
		}
		if stop.Before(start) {
			return Run{}, field("end_time", fmt.Errorf("%s is before start_time %s", *a.EndTime, *a.StartTime))
		}
		stop = stop.UTC()
		info.Stop = &stop
	}
	if a.LastUpdate != nil {
		lu, err := time.Parse(time.RFC3339, *a.LastUpdate)
		if err != nil {
			return Run{}, field("last_update", err)
		}
		info.LastUpdate = lu.UTC()
	}
	if a.BField != nil {
		info.BField = *a.BField
	}
	if a.LastLumi != nil {
		if *a.LastLumi < 0 {
			return Run{}, field("last_lumisection_number", fmt.Errorf("negative (%d)", *a.LastLumi))
		}
		info.Lumis = *a.LastLumi
	}
	info.Era, info.Sequence, info.HLTKey, info.FillType = deref(a.Era), deref(a.Sequence), deref(a.HLTKey), deref(a.FillType)
	if a.StableBeam != nil {
		info.StableBeam = *a.StableBeam
	}
	return Run{Number: n, Info: info}, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
