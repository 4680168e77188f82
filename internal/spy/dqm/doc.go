// Package dqm spies on the DQM GUI (cms-interfaces.md §6) for DQM's second opinion on each PCL
// calibration: some workflows upload payloads even when nothing changed, so an upload alone is no proof of
// a good calibration. For every open, stopped run it looks up the run's ALCAPROMPT harvesting samples
// (one per AlCaReco producer, e.g. /StreamExpress/Run2025C-PromptCalibProdSiStripGains-Express-v1/ALCAPROMPT),
// reads each workflow's DQM folder in that sample and turns the quality-test results of its monitor
// elements into good, warning, bad or unknown (the worst result wins). It speaks both the classic GUI
// (/data/json/samples, /data/json/archive/...) and the new GUI (api/v1/samples, api/v1/archive/...).
// The classic GUI's run parameter is a regular expression, so one samples query names up to 40 runs
// (^(392700|392701)$); the new GUI is asked run by run.
// Which folder belongs to which workflow is configuration (Config.Folders); the default is
// AlCaReco/<workflow name>. A verdict is reported when it changes (the cursor remembers the last one of
// each open run and workflow), stamped with the poll that saw it, so that a verdict that flips back is
// a new fact.
package dqm
