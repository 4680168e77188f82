package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/web"
)

// client is the operator's side of the HTTP API.
type client struct {
	base string
	http *httpx.Client
	json bool
}

func (e *env) clientFlags(fs *flag.FlagSet) func() (*client, error) {
	server := fs.String("server", envOr("SPYAGENCY_SERVER", "http://127.0.0.1:8080"), "the Spy Agency server (env SPYAGENCY_SERVER)")
	tokenFile := fs.String("token-file", "", "file holding an API token (default: env SPYAGENCY_TOKEN)")
	asJSON := fs.Bool("json", false, "print the server's JSON instead of a table")
	return func() (*client, error) {
		u, err := url.Parse(*server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("bad --server %q: want http(s)://host:port", *server)
		}
		token := os.Getenv("SPYAGENCY_TOKEN")
		if *tokenFile != "" {
			b, err := os.ReadFile(*tokenFile)
			if err != nil {
				return nil, err
			}
			token = strings.TrimSpace(string(b))
		}
		// The server's replies are Spy Agency's own format: read strictly, so that a client and a server
		// that disagree say so rather than print half a run. The operator may sit behind a proxy.
		hc := httpx.New(httpx.Options{Timeout: 30 * time.Second, MaxBytes: 64 << 20, Strict: true, EnvProxy: true,
			UserAgent: "spyagency-cli", Token: func() (string, error) { return token, nil }})
		return &client{base: strings.TrimRight(*server, "/"), http: hc, json: *asJSON}, nil
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// call sends a request and, with --json, prints the reply as it came to w; otherwise it decodes it into
// into, strictly. printed says which, so that the caller prints its table only when it has to. The
// server's {"error","code"} becomes an error in its own words.
func (c *client) call(ctx context.Context, w io.Writer, method, path string, body, into any) (printed bool, err error) {
	out, err := c.do(ctx, method, path, body)
	if err != nil {
		return false, err
	}
	if c.json {
		_, err := fmt.Fprintf(w, "%s\n", out)
		return true, err
	}
	if err := httpx.DecodeBytesStrict(out, into); err != nil {
		return false, fmt.Errorf("server reply: %w", err)
	}
	return false, nil
}

// do sends the request and returns the reply as it came.
func (c *client) do(ctx context.Context, method, path string, body any) (json.RawMessage, error) {
	req := httpx.Request{Method: method, URL: c.base + path}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		req.Body = b
	}
	var out json.RawMessage
	if _, err := c.http.Send(ctx, req, &out); err != nil {
		var e *httpx.Error
		if errors.As(err, &e) && e.APIMessage != "" {
			return nil, fmt.Errorf("%s (%s, HTTP %d)", e.APIMessage, e.APICode, e.Status)
		}
		return nil, err
	}
	return out, nil
}

func runNumber(fs *flag.FlagSet) (uint32, error) {
	arg, err := oneArg(fs, "run number")
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(arg, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("bad run number %q", arg)
	}
	return uint32(n), nil
}

// parseRun parses flags around one positional run number.
func (e *env) parseRun(fs *flag.FlagSet, args []string) (uint32, error) {
	pos, err := e.parseInterleaved(fs, args)
	if err != nil {
		return 0, err
	}
	if err := fs.Parse(pos); err != nil {
		return 0, errUsage
	}
	return runNumber(fs)
}

// parseInterleaved parses flags given before or after the positional arguments.
func (e *env) parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := e.parse(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func runRuns(e *env, args []string) error {
	fs := e.flags("runs", "runs [--class PATTERN] [--readiness STATE] [--limit N] [--server URL] [--json]")
	class := fs.String("class", "", "run class or pattern, e.g. Collisions*")
	readiness := fs.String("readiness", "", "only runs in this readiness")
	limit := fs.Int("limit", 30, "at most this many runs")
	mk := e.clientFlags(fs)
	if err := e.parse(fs, args); err != nil {
		return err
	}
	c, err := mk()
	if err != nil {
		return err
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	if *class != "" {
		q.Set("class", *class)
	}
	if *readiness != "" {
		q.Set("readiness", *readiness)
	}
	var list struct {
		Runs []web.RunView `json:"runs"`
	}
	if printed, err := c.call(e.ctx, e.stdout, "GET", "/api/v1/runs?"+q.Encode(), nil, &list); printed || err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tCLASS\tSTOPPED\tREADINESS\tVERSION\tREASON")
	for _, r := range list.Runs {
		stopped := "ongoing"
		if r.Stop != nil {
			stopped = r.Stop.UTC().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\tv%d\t%s\n", r.Run, r.Class, stopped, r.Readiness.State, r.Readiness.Version, oneLine(r.Readiness.Reason, 90))
	}
	return tw.Flush()
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		return s[:max-1] + "…"
	}
	return s
}

func runRun(e *env, args []string) error {
	fs := e.flags("run", "run N [--server URL] [--json]")
	mk := e.clientFlags(fs)
	run, err := e.parseRun(fs, args)
	if err != nil {
		return err
	}
	c, err := mk()
	if err != nil {
		return err
	}
	var v web.RunView
	if printed, err := c.call(e.ctx, e.stdout, "GET", fmt.Sprintf("/api/v1/runs/%d", run), nil, &v); printed || err != nil {
		return err
	}
	printRun(e.stdout, v)
	return nil
}

func printRun(w io.Writer, v web.RunView) {
	fmt.Fprintf(w, "run %d  %s  readiness %s (v%d)\n%s\n", v.Run, v.Class, v.Readiness.State, v.Readiness.Version, v.Readiness.Reason)
	if len(v.Readiness.Blocking) > 0 {
		fmt.Fprintf(w, "blocking: %s\n", strings.Join(v.Readiness.Blocking, ", "))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKFLOW\tSTATE\tREQUIRED\tQUALITY\tFLAGS\tREASON")
	for _, wf := range v.Workflows {
		if wf.State == pcl.StateNotExpected && !wf.Required {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\n", wf.Name, wf.State, wf.Required, wf.Quality, flagList(wf.Flags), oneLine(wf.Reason, 80))
	}
	tw.Flush()
}

func flagList(fl []pcl.Flag) string {
	if len(fl) == 0 {
		return "-"
	}
	s := make([]string, len(fl))
	for i, f := range fl {
		s[i] = string(f)
	}
	return strings.Join(s, ",")
}

// override makes the release, hold, clear and accept commands.
func override(action pcl.OverrideAction) func(e *env, args []string) error {
	return func(e *env, args []string) error {
		syn := fmt.Sprintf("%s N --reason R [--server URL] [--token-file F]", action)
		if action == pcl.OverrideAccept {
			syn = "accept N --workflow W --reason R [--server URL] [--token-file F]"
		}
		fs := e.flags(string(action), syn)
		reason := fs.String("reason", "", "why (required; recorded in the audit log)")
		workflow := fs.String("workflow", "", "the workflow (accept; or clear an accept)")
		mk := e.clientFlags(fs)
		run, err := e.parseRun(fs, args)
		if err != nil {
			return err
		}
		if strings.TrimSpace(*reason) == "" {
			// Every override is audited with its reason, an undo as much as the action it undoes: the
			// next shift must be able to read why a hold was lifted.
			return fmt.Errorf("--reason is required: say why you %s run %d (it is kept in the audit log)", action, run)
		}
		c, err := mk()
		if err != nil {
			return err
		}
		var v web.RunView
		body := map[string]string{"action": string(action), "workflow": *workflow, "reason": *reason}
		if printed, err := c.call(e.ctx, e.stdout, "POST", fmt.Sprintf("/api/v1/runs/%d/override", run), body, &v); printed || err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "run %d is now %s (v%d): %s\n", v.Run, v.Readiness.State, v.Readiness.Version, v.Readiness.Reason)
		return nil
	}
}
