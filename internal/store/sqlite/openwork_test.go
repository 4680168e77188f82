package sqlite

import "testing"

// TestOpenWorkQueriesUseIndexes: the pull API's and the start-up's reads go through the partial
// indexes of open work, not through every run ever stored.
func TestOpenWorkQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	s := openTemp(t, Options{})
	wantQueryPlan(t, s, unreleasedSummaryQuery, []any{1}, "run_states_unreleased")
	wantQueryPlan(t, s, openRunStatesQuery, []any{1}, "run_states_unreleased")
	wantQueryPlan(t, s, openRunStatesQuery, []any{1}, "run_states_released_stop")
}
