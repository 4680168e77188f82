// Package tier0 spies on the Tier-0 Data Service (t0wmadatasvc, cms-interfaces.md §2). It asks, only about
// runs the agency still has open: express_config (which AlCaReco producers each express stream runs, so
// which PCL workflows to expect), run_stream_done for the express streams of stopped runs (processing,
// AlcaHarvest and the upload task finished), reco_config (a row means PromptReco was released for that
// run and dataset), and the global firstconditionsaferun and promptreco_status. Every reply is the chunked
// {"result": [...]} envelope, read in one place (internal/t0envelope); the service caches replies for
// 5 minutes, so the spy does not ask the same URL again before its Expires.
package tier0
