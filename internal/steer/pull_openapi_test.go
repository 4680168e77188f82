package steer

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/web/openapi"
)

// TestPullMatchesOpenAPI: the pull API's replies, good and bad, are what the served OpenAPI document
// says Tier-0 gets.
func TestPullMatchesOpenAPI(t *testing.T) {
	t.Parallel()
	runs := sourceFunc(func(context.Context, uint32) ([]pcl.RunState, error) {
		return []pcl.RunState{ready(100), waiting(101), ready(102)}, nil
	})
	broken := sourceFunc(func(context.Context, uint32) ([]pcl.RunState, error) { return nil, errors.New("store gone") })
	for _, src := range []sourceFunc{runs, broken} {
		readyRuns, first := PullHandlers(src, testPolicy())
		for _, c := range []struct {
			h           http.HandlerFunc
			path, query string
		}{
			{first, "/t0/v1/first_unready_run", ""},
			{readyRuns, "/t0/v1/ready_runs", "?from=100&to=102"},
			{readyRuns, "/t0/v1/ready_runs", "?from=200"},
			{readyRuns, "/t0/v1/ready_runs", "?from=x"},
		} {
			code, body, _ := get(t, c.h, http.MethodGet, c.path+c.query)
			if err := openapi.Validate(openapi.Operation{Method: "GET", Path: c.path}, code, []byte(body)); err != nil {
				t.Errorf("%s%s (%d): %v\n%s", c.path, c.query, code, err, body)
			}
		}
	}
}
