package pcl

import "time"

// OpenRun is a run the agency still needs facts about: what the spies are told to ask their sources.
type OpenRun struct {
	Run     uint32
	Stopped bool
	// Streams are the express streams Tier-0 runs for it that are not yet seen done.
	Streams []string
}

// SourceHealth is a spy's health as the API reports it (design.md: GET /api/v1/sources).
type SourceHealth struct {
	Name        Source    `json:"name"`
	Healthy     bool      `json:"healthy"`
	Stale       bool      `json:"stale"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	// View is when the view of the source taken by the newest successful poll was taken (the start of
	// its listing or query), persisted with the cursor so that it survives a restart.
	View       time.Time `json:"view,omitzero"`
	LagSeconds float64   `json:"lag_seconds"`
	Error      string    `json:"error,omitempty"`
	Failures   int       `json:"failures"` // consecutive failed polls
}
