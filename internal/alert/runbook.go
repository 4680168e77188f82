package alert

// RuleDoc is a rule's runbook entry: what the alert means and what to do. The server shows these at
// /alerts/runbook (where the alerts' runbook links point by default); docs/alerts.md gives the same
// words, and a test keeps the two the same.
type RuleDoc struct {
	Name    string
	Meaning string
	Action  string
}

// Runbook is every rule's entry, in the documentation's order.
func Runbook() []RuleDoc { return runbook }

var runbook = []RuleDoc{
	{"workflow-late",
		"A workflow of a run Tier-0 has not released is not in a final state 10 h (`after`) after the run stopped, or it timed out. On schedule, an express stream closes within about 3 h of the stop and its workflows are harvested at the next cycle (every 20 min, every 6 h for the slow streams), uploaded within minutes and in the condition DB soon after; Tier-0 harvests whatever it has at 12 h. While a source the workflow's progress is seen through is stale, the alert is held back by that source's `source-stale` alert: the lateness may be only what the agency cannot see.",
		"Open the run's page and read the workflow's state and reason. `awaiting-harvest`: ask Tier-0 operations whether AlcaHarvest of the stream ran (the express stream may be stuck). `harvested` or `uploading`: look at the upload log for the file (its link is on the run page). `uploaded`: the condition DB has not shown the IOV yet; check the tag in the condition DB browser. If the calibration will not come, accept the workflow or release the run with a reason."},
	{"upload-failed",
		"The conditions upload service (dropBox) logged `fail` for the run's payload in a destination tag that gates PromptReco (or, where none gates, in one of its tags). Nothing retries by itself: the run is blocked.",
		"Read the upload log entry (linked from the run page) for the reason. Fix and re-upload the payload (the AlCa/DB contacts can), or accept the workflow, or release the run, each with a reason; the run is ready again as soon as the payload is in the condition DB."},
	{"too-late",
		"The upload was refused because its since is below Tier-0's first condition-safe run: PromptReco of the run is already locked for that tag. This is an expected outcome of a late payload, not a fault of the upload service.",
		"Nothing can put the payload in this run's PromptReco any more. Accept the workflow (the run goes with the previous conditions) or release the run, with a reason; tell the workflow's experts if it happens often."},
	{"no-payload",
		"A workflow produced no payload for the run, and the run needs one: the class policy requires a payload for this workflow, or nothing confirmed the absence (no DQM verdict of insufficient statistics, no harvest-area scan after the stream was done). The run is blocked.",
		"Check the workflow's DQM plots and Tier-0's AlcaHarvest log for the run. If too few events is the reason, accept the workflow (PromptReco goes on with the previous conditions). If the harvest failed, have it re-run; the run is ready once the payload is in."},
	{"dqm-bad",
		"The DQM quality tests of the workflow's ALCAPROMPT harvesting say `bad` (an error status) for the run: the payload may be wrong even though it is in the condition DB. Some workflows upload unchanged (\"null\") payloads, so an upload alone proves little.",
		"Look at the workflow's DQM plots for the run (the DQM GUI link on the run page) with the workflow's expert. If the payload is wrong, hold the run and have it fixed; if the test is wrong, note it in the run's audit log by accepting or releasing with a reason."},
	{"at-risk",
		"The workflow will miss Tier-0's own lock of the run's PromptReco (the run's stop + 48 h − 30 min, in run order) unless something changes: it is behind Tier-0's schedule for its step (harvested by 12 h + 1 h, uploaded by 18 h, or the policy's `at_risk_fraction` of its deadline), or it is in a bad final state, or the first condition-safe run has already passed it. The alert fires before the lock, and says when the lock is.",
		"Act before the lock time in the alert: follow the workflow's state as for `workflow-late`, `upload-failed` or `no-payload`. If it cannot be in the condition DB in time, decide now: accept the workflow or release the run (PromptReco goes with the previous conditions), or hold the run if PromptReco must wait for it (Tier-0 then needs to be told to hold it too)."},
	{"run-blocked",
		"A run is `blocked`: a required workflow is in a bad final state or its absence is unconfirmed, and nothing will change without a person. With in-order release every later run waits behind it.",
		"Read the run's reason: it names the workflow, its state and the actions that unblock it. Accept the workflow, release the run, or fix and re-upload, each with a reason."},
	{"run-timed-out",
		"A run's deadline (by default Tier-0's own lock time) passed with required workflows not ok. Under the release policy it was released without them, as Tier-0 would have; under the hold policy it waits for an operator.",
		"Check which workflows it lacked (the run page). Under `hold`: accept, release or fix. Under `release`: tell the workflows' experts; PromptReco of the run went with the previous conditions."},
	{"run-held",
		"An operator hold keeps a run from release for longer than 12 h (`after`). Holds are meant to be short: every later run waits behind a held run under in-order release.",
		"Ask the person named in the hold (the run page, the audit log) whether it is still needed; clear it, or release the run, with a reason."},
	{"in-order-jam",
		"Under in-order release, the first run Tier-0 may not release holds back at least one (`count`) newer run that could go on its own merits, for at least 2 h (`after`). PromptReco of all of them waits for the one.",
		"Open the first unready run (the board's header names it) and unblock it: its reason says what it waits for. If it will not come soon, accept its workflow or release it with a reason, so that the runs behind it go."},
	{"source-stale",
		"A spy's source failed too many polls in a row (`stale_after`): nothing positive is concluded from it until it answers again, so runs that need its news wait. Alerts whose lateness it can explain (`workflow-late`) are held back by this one.",
		"Open the Sources page for the last error. Check the service (OMS, Tier-0 Data Service, EOS harvest area, the upload log, the condition DB, the DQM GUI) and the credentials (token files). Nothing needs doing on the runs: they catch up when the source answers."},
	{"push-undeliverable",
		"A decision was given up at a push target (refused, or too many failed attempts) and no later decision of the run got through there since: Tier-0 may be acting on an older decision of the run.",
		"Look at the target's error (GET /api/v1/outbox?dead=1, and the audit log). Fix the receiver; the next decision of the run is pushed as usual. Meanwhile tell Tier-0 operations the run's current readiness; its pull API (/t0/v1/first_unready_run) is right throughout."},
	{"store-trouble",
		"The store's file system has less free space than `min_free_bytes` (1 GiB), or the store refused a write. Decisions are persisted before anything is told to anyone: a store that cannot write stops the agency telling Tier-0 anything new.",
		"Free space on the data directory's file system, or fix the store's file (permissions, disk); the error is in the alert and in the server log. Nothing is lost: the spies observe again what was not stored."},
	{"notifier-failing",
		"A notifier's last deliveries failed (3 in a row, `count`): alerts may not reach the people it tells. This alert goes out through the other notifiers; the Alerts page shows each notifier's health.",
		"Check the notifier's last error on the Alerts page: Alertmanager or the webhook unreachable, a token refused, the SMTP server or its certificate. Notices worth retrying are retried with backoff for `retry_for`, then given up."},
}
