package sim

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Upload-log paging limits (docs/upload-log.md leaves them to the server; at least 100).
const (
	logDefaultLimit = 500
	logMaxLimit     = 2000
)

// uploadLog serves GET /logs/dropBox/uploadLog?since=&limit= as docs/upload-log.md defines it.
func (s *Sim) uploadLog(rw http.ResponseWriter, req *http.Request, _ time.Time) {
	q := req.URL.Query()
	var since time.Time
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			http.Error(rw, fmt.Sprintf("since %q is not an RFC 3339 time", v), http.StatusBadRequest)
			return
		}
		since = t
	}
	limit := logDefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			http.Error(rw, fmt.Sprintf("limit %q is not a positive number", v), http.StatusBadRequest)
			return
		}
		limit = min(n, logMaxLimit)
	}
	// The log is appended in logged order; ties are put in (fileHash, destinationTag) order here.
	recs := s.w.uploadLog
	i, _ := slices.BinarySearchFunc(recs, since, func(r logRecord, t time.Time) int { return r.Logged.Compare(t) })
	sel := slices.Clone(recs[i:])
	slices.SortStableFunc(sel, func(a, b logRecord) int {
		return cmp.Or(a.Logged.Compare(b.Logged), strings.Compare(a.FileHash, b.FileHash),
			strings.Compare(a.DestinationTag, b.DestinationTag))
	})
	var next any
	if len(sel) > limit {
		sel = sel[:limit]
		next = sel[limit-1].Logged.UTC().Format(time.RFC3339Nano)
	}
	out := make([]any, len(sel))
	for k, r := range sel {
		out[k] = map[string]any{"fileHash": r.FileHash, "fileName": r.FileName, "inputTag": r.InputTag,
			"destinationTag": r.DestinationTag, "status": r.Status, "info": r.Info,
			"uploaded": r.Uploaded.UTC().Format(time.RFC3339Nano), "logged": r.Logged.UTC().Format(time.RFC3339Nano)}
	}
	writeJSON(rw, map[string]any{"records": out, "next": next})
}
