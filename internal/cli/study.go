package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cms-pcl/spyagency/internal/study"
)

// runStudy runs the release-latency study in simulated time and prints its table (or JSON).
func runStudy(e *env, args []string) error {
	fs := e.flags("study", "study [--days N] [--seed N] [--policy "+strings.Join(study.Policies, ",")+"] [--faults none|default|heavy] [--operator-response 1h] [--json] [--svg FILE] [--check]")
	days := fs.Int("days", 28, "runs that stop in the first N simulated days are measured (the world runs two days more)")
	seed := fs.Uint64("seed", 1, "the simulated world's seed")
	policies := fs.String("policy", strings.Join(study.Policies, ","), "comma-separated policies: "+strings.Join(study.Policies, ", "))
	faults := fs.String("faults", "default", "fault profile: none, default or heavy")
	response := fs.Duration("operator-response", time.Hour, "how long the simulated shift operator of agency+operator takes to act on a blocked run")
	step := fs.Duration("step", time.Minute, "the driver's step in simulated time; every spy polls on its own interval as long as the step is not longer")
	asJSON := fs.Bool("json", false, "print the metrics as JSON instead of a table")
	svgFile := fs.String("svg", "", "also write the plot (latency distributions, in-order jam) to this SVG file")
	level := fs.String("log-level", "info", "debug, info, warn or error (progress goes to stderr)")
	check := fs.Bool("check", false, "after the results, check the study's targets (docs/study.md) and fail (exit 1) naming each one missed")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return e.usageError(fs, "unexpected argument %q", fs.Arg(0))
	}
	if *days < 1 || *days > 366 {
		return e.usageError(fs, "bad --days %d: want 1 to 366", *days)
	}
	switch *faults {
	case "none", "default", "heavy":
	default:
		return e.usageError(fs, "bad --faults %q: want none, default or heavy", *faults)
	}
	var names []string
	for _, p := range strings.Split(*policies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			names = append(names, p)
		}
	}
	if len(names) == 0 {
		return e.usageError(fs, "--policy names no policy")
	}
	log, err := logger(e.stderr, *level)
	if err != nil {
		return err
	}
	defer batchGC()()
	res, err := study.Run(e.ctx, study.Options{Days: *days, Seed: *seed, Faults: *faults, Policies: names,
		OperatorResponse: *response, Step: *step, Logger: log})
	if err != nil {
		return err
	}
	log.Info("study done", "days", *days, "seed", *seed, "faults", *faults, "elapsed", res.Elapsed.Round(time.Millisecond))
	if *svgFile != "" {
		if err := os.WriteFile(*svgFile, []byte(study.SVG(res)), 0o644); err != nil {
			return fmt.Errorf("write the plot: %w", err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else if err := printStudy(e, res); err != nil {
		return err
	}
	if *check {
		return checkTargets(e, res)
	}
	return nil
}

// checkTargets says on stderr whether the study met its targets, and fails naming those it missed.
func checkTargets(e *env, res *study.Result) error {
	unmet := res.Unmet()
	if len(unmet) == 0 {
		fmt.Fprintf(e.stderr, "study targets met: agency 0 unsafe, 0 later than fixed48h, median ≤ %.2f × oracle; agency+operator ≤ %.2f × oracle+operator\n",
			study.TargetRatio, study.TargetRatio)
		return nil
	}
	return fmt.Errorf("study targets missed (%d):\n  %s", len(unmet), strings.Join(unmet, "\n  "))
}

// printStudy writes the results table.
func printStudy(e *env, res *study.Result) error {
	fmt.Fprintf(e.stdout, "Release latency after run stop (hours), %d simulated days, seed %d, faults %s, operator response %s; study took %s.\n\n",
		res.Days, res.Seed, res.Faults, res.Response, res.Elapsed.Round(time.Second))
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\truns\tmedian\tp90\tmax\tunsafe\tby timeout\tlater than fixed\toperator actions\tjam run-hours\t× fixed48h\t× oracle\t")
	for _, p := range res.Policies {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%d\t%d\t%d\t%d\t%.1f\t%.3f\t%.3f\t\n", p.Policy, p.Runs, p.MedianHours, p.P90Hours, p.MaxHours,
			p.SafetyViolations, p.ReleasedByTimeout, p.LaterThanFixed, p.OperatorActions, p.JamRunHours, p.RatioToFixed48h, p.RatioToOracle)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range res.Policies {
		if p.Unreleased > 0 {
			fmt.Fprintf(e.stdout, "\n%s: %d runs not released by the end of the world.\n", p.Policy, p.Unreleased)
		}
		if p.RatioToOracleOperator > 0 {
			fmt.Fprintf(e.stdout, "\n%s: median %.3f × oracle+operator's (the oracle with the operator's response time added).\n", p.Policy, p.RatioToOracleOperator)
		}
		if len(p.Violations) > 0 {
			fmt.Fprintf(e.stdout, "\n%s: %d unsafe releases (%d missing calibrations), the first:\n", p.Policy, p.SafetyViolations, len(p.Violations))
			for _, v := range p.Violations[:min(len(p.Violations), 5)] {
				fmt.Fprintf(e.stdout, "  %s\n", v)
			}
			if len(p.Violations) > 5 {
				fmt.Fprintf(e.stdout, "  ... (--json lists them all)\n")
			}
		}
	}
	return nil
}

// usageError prints a problem with the command line and the command's usage to stderr: exit 2.
func (e *env) usageError(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(e.stderr, "spyagency %s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return errUsage
}
