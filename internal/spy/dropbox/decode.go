package dropbox

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// Record is one line of the upload log: one uploaded file and one destination tag.
type Record struct {
	FileHash       string
	FileName       string
	InputTag       string
	DestinationTag string
	Status         pcl.UploadStatus
	Info           string
	Uploaded       time.Time
	Logged         time.Time
}

// key identifies a record among those logged at the same instant.
func (r Record) key() string {
	return r.FileHash + "/" + r.DestinationTag + "/" + string(r.Status)
}

// Page is one reply of the log.
type Page struct {
	Records []Record
	// Next is the since to ask with for the rest; nil when the reply holds everything.
	Next *time.Time
	// Sorted says whether the records came in logged order (DecodeLog sorts them either way).
	Sorted bool
}

// wire is the JSON as docs/upload-log.md defines it. Pointers tell a missing field from an empty one.
type wire struct {
	Records *[]wireRecord `json:"records"`
	Next    *string       `json:"next"`
}

type wireRecord struct {
	FileHash       *string `json:"fileHash"`
	FileName       *string `json:"fileName"`
	InputTag       *string `json:"inputTag"`
	DestinationTag *string `json:"destinationTag"`
	Status         *string `json:"status"`
	Info           *string `json:"info"`
	Uploaded       *string `json:"uploaded"`
	Logged         *string `json:"logged"`
}

// DecodeLog reads one reply of the upload log. Required fields must be present and typed, the hash must
// be 40 hex digits, the times RFC 3339, the status one of ok, skip, fail, too-late; every error names
// the record. Unknown fields are ignored. The records are returned in (logged, fileHash, destinationTag)
// order.
func DecodeLog(data []byte) (Page, error) {
	var w wire
	if err := httpx.DecodeBytes(data, &w); err != nil {
		return Page{}, fmt.Errorf("upload log: %w", err)
	}
	if w.Records == nil {
		return Page{}, fmt.Errorf("upload log: field records missing or null")
	}
	p := Page{Records: make([]Record, 0, len(*w.Records)), Sorted: true}
	for i, wr := range *w.Records {
		r, err := wr.record()
		if err != nil {
			return Page{}, fmt.Errorf("upload log: record %d%s: %w", i+1, wr.describe(), err)
		}
		if n := len(p.Records); n > 0 && compare(p.Records[n-1], r) > 0 {
			p.Sorted = false
		}
		p.Records = append(p.Records, r)
	}
	slices.SortStableFunc(p.Records, compare)
	if w.Next != nil {
		t, err := time.Parse(time.RFC3339Nano, *w.Next)
		if err != nil {
			return Page{}, fmt.Errorf("upload log: field next is %q, want an RFC 3339 time or null", *w.Next)
		}
		p.Next = &t
	}
	return p, nil
}

func compare(a, b Record) int {
	return cmp.Or(a.Logged.Compare(b.Logged), strings.Compare(a.FileHash, b.FileHash),
		strings.Compare(a.DestinationTag, b.DestinationTag))
}

// describe names a record by what it has, for errors.
func (w wireRecord) describe() string {
	var parts []string
	if w.FileName != nil {
		parts = append(parts, "file "+*w.FileName)
	} else if w.FileHash != nil {
		parts = append(parts, "hash "+*w.FileHash)
	}
	if w.DestinationTag != nil {
		parts = append(parts, "tag "+*w.DestinationTag)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func (w wireRecord) record() (Record, error) {
	req := func(p *string, field string) (string, error) {
		if p == nil || strings.TrimSpace(*p) == "" {
			return "", fmt.Errorf("field %s missing or empty", field)
		}
		return *p, nil
	}
	var (
		r   Record
		err error
	)
	if r.FileHash, err = req(w.FileHash, "fileHash"); err != nil {
		return r, err
	}
	if len(r.FileHash) != 40 || strings.Trim(strings.ToLower(r.FileHash), "0123456789abcdef") != "" {
		return r, fmt.Errorf("field fileHash %q is not a SHA-1 (40 hex digits)", r.FileHash)
	}
	r.FileHash = strings.ToLower(r.FileHash)
	if r.FileName, err = req(w.FileName, "fileName"); err != nil {
		return r, err
	}
	if r.InputTag, err = req(w.InputTag, "inputTag"); err != nil {
		return r, err
	}
	if r.DestinationTag, err = req(w.DestinationTag, "destinationTag"); err != nil {
		return r, err
	}
	status, err := req(w.Status, "status")
	if err != nil {
		return r, err
	}
	r.Status = pcl.UploadStatus(status)
	if !r.Status.Valid() {
		return r, fmt.Errorf("unknown status %q (want ok, skip, fail or too-late)", status)
	}
	if w.Info != nil {
		r.Info = *w.Info
	}
	for _, f := range []struct {
		p    *string
		name string
		into *time.Time
	}{{w.Uploaded, "uploaded", &r.Uploaded}, {w.Logged, "logged", &r.Logged}} {
		s, err := req(f.p, f.name)
		if err != nil {
			return r, err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return r, fmt.Errorf("field %s %q is not an RFC 3339 time", f.name, s)
		}
		*f.into = t.UTC()
	}
	return r, nil
}
