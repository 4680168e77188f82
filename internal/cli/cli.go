// Package cli is the command line of spyagency: each subcommand parses its flags and calls into the
// packages that do the work. Main returns the exit code (0 ok, 1 failure, 2 usage), so tests run the
// commands in process. Logs go to stderr; stdout carries only what a command is asked to print.
package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// Version is set at build time with -ldflags "-X github.com/cms-pcl/spyagency/internal/cli.Version=...".
var Version = "dev"

type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
}

type command struct {
	summary string
	run     func(e *env, args []string) error
}

// errUsage marks a usage error (exit 2); the message was printed already. errHelp marks help that was
// asked for and printed (exit 0).
var (
	errUsage = errors.New("usage")
	errHelp  = errors.New("help")
)

func commands() map[string]command {
	return map[string]command{
		"version":  {"print version, commit and Go version", runVersion},
		"serve":    {"run the agency against the configured sources", runServe},
		"simulate": {"serve only the simulated CMS services, for serve to watch (--print-config); --fast --days N: build N days and their store", runSimulate},
		"demo":     {"the whole loop on this machine: a simulated CMS and the agency, dashboard included", runDemo},
		"config":   {"check a configuration file (config check FILE), or print an example (config example)", runConfig},
		"probe":    {"poll one source once and print its observations as JSON lines", runProbe},
		"runs":     {"list runs and their readiness (from a server)", runRuns},
		"run":      {"show one run's workflows and decision (from a server)", runRun},
		"release":  {"force a run's release, with a reason", override(pcl.OverrideRelease)},
		"hold":     {"hold a run from release, with a reason", override(pcl.OverrideHold)},
		"clear":    {"undo a hold or forced release (or an accept, with --workflow)", override(pcl.OverrideClear)},
		"accept":   {"accept a workflow's bad final state for a run, with a reason", override(pcl.OverrideAccept)},
		"token":    {"make, list or revoke API tokens (token create|list|revoke, with --store)", runToken},
		"backfill": {"rebuild a run range's history from the sources, resumable, telling Tier-0 nothing", runBackfill},
		"study":    {"the release-latency study: policies on one seeded simulated world, in simulated time", runStudy},
	}
}

// Main runs the command line.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		usage(stderr) // no command is a usage error
		return 2
	}
	if isHelp(args[0]) || args[0] == "help" {
		if args[0] == "help" && len(args) > 1 {
			// "spyagency help CMD" is "spyagency CMD --help".
			return Main(ctx, []string{args[1], "--help"}, stdout, stderr)
		}
		usage(stdout) // asked for: it is the output, not a complaint
		return 0
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "spyagency: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := cmd.run(e, args[1:]); err != nil {
		switch {
		case errors.Is(err, errHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		}
		fmt.Fprintf(stderr, "spyagency %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// isHelp says whether an argument asks for help, in any of the spellings the flag package accepts.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "--h", "-help", "--help":
		return true
	}
	return false
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "spyagency watches the CMS Prompt Calibration Loop and tells Tier-0 when each run's calibrations are in the condition DB.")
	fmt.Fprintln(w, "\nUsage: spyagency COMMAND [flags]\n\nCommands:")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'spyagency COMMAND -h' for a command's flags.")
}

// flags makes a flag set that reports errors to stderr and never exits the process.
func (e *env) flags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: spyagency %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags. Asked for help (-h, --help), it prints the command's usage to stdout and returns
// errHelp (exit 0): help is what was asked for, not an error. A bad flag prints the problem and the
// usage to stderr and returns errUsage (exit 2).
func (e *env) parse(fs *flag.FlagSet, args []string) error {
	// The flag package prints the usage itself, before it says whether it was asked for; catch it and
	// route it once the answer is known.
	var buf bytes.Buffer
	out := fs.Output()
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, _ = e.stdout.Write(buf.Bytes())
		return errHelp
	case err != nil:
		_, _ = out.Write(buf.Bytes())
		return errUsage
	}
	return nil
}

// cacheDir is a folder of the user's cache directory, made if missing.
func cacheDir(name string) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("data directory: %w", err)
	}
	return dir, nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// logger writes to w at the level: text for a person at a terminal, JSON lines for a log collector
// (journald, a container runtime) otherwise; SPYAGENCY_LOG_FORMAT=text or json decides instead.
func logger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad --log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch f := os.Getenv(logFormatEnv); f {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "", "auto":
		if isTerminal(w) {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("bad %s %q: want text, json or auto", logFormatEnv, f)
	}
}

// logFormatEnv names the environment variable that chooses the log format.
const logFormatEnv = "SPYAGENCY_LOG_FORMAT"

// isTerminal says whether w is a character device (a terminal), not a file, pipe or socket.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// buildVersion is the version and commit to report. A version set with -ldflags wins; otherwise the
// build's own stamp: the module version the go command derived (a tag, or a pseudo-version made from
// the commit when built in a git checkout) and the VCS settings (vcs.revision, vcs.time,
// vcs.modified). Only a build with neither (go run, go test) says "dev" and "commit unknown".
func buildVersion(ldflags string, bi *debug.BuildInfo, ok bool) (version, commit string) {
	version, commit = ldflags, "unknown"
	if !ok || bi == nil {
		return version, commit
	}
	var rev, at string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if version == "" || version == "dev" {
		switch v := bi.Main.Version; {
		case v != "" && v != "(devel)":
			version = v
		case rev != "":
			version = "dev-" + rev[:min(12, len(rev))]
			if modified {
				version += "+dirty"
			}
		default:
			version = "dev"
		}
	}
	if rev != "" {
		commit = rev
		var notes []string
		if at != "" {
			notes = append(notes, at)
		}
		if modified {
			notes = append(notes, "with uncommitted changes")
		}
		if len(notes) > 0 {
			commit += " (" + strings.Join(notes, ", ") + ")"
		}
	}
	return version, commit
}

// versionInfo is this binary's version and commit.
func versionInfo() (version, commit string) {
	bi, ok := debug.ReadBuildInfo()
	return buildVersion(Version, bi, ok)
}

func runVersion(e *env, args []string) error {
	fs := e.flags("version", "version")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	version, commit := versionInfo()
	fmt.Fprintf(e.stdout, "spyagency %s\ncommit %s\n%s %s/%s\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// oneArg returns the single positional argument, or a usage error naming what is missing.
func oneArg(fs *flag.FlagSet, what string) (string, error) {
	switch fs.NArg() {
	case 1:
		return fs.Arg(0), nil
	case 0:
		fmt.Fprintf(fs.Output(), "missing %s\n", what)
	default:
		fmt.Fprintf(fs.Output(), "one %s only, got %s\n", what, strings.Join(fs.Args(), " "))
	}
	fs.Usage()
	return "", errUsage
}
