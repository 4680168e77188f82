package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cms-pcl/spyagency/internal/access"
	"github.com/cms-pcl/spyagency/internal/app"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/store"
)

// The token commands work on the store directly (the server need not run), as its administrator
// would: whoever can open the store file can make tokens anyway. Each one that changes something is
// written to the audit log under the name of the system user who ran it.

const tokenUsage = `Usage: spyagency token create --store DSN --name NAME --scope read|steer|operate [--expires DURATION]
       spyagency token list --store DSN [--json]
       spyagency token revoke NAME --store DSN`

func runToken(e *env, args []string) error {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(e.stdout, tokenUsage)
		return errHelp
	}
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, tokenUsage)
		return errUsage
	}
	switch args[0] {
	case "create":
		return tokenCreate(e, args[1:])
	case "list":
		return tokenList(e, args[1:])
	case "revoke":
		return tokenRevoke(e, args[1:])
	}
	fmt.Fprintf(e.stderr, "spyagency token: unknown subcommand %q\n%s\n", args[0], tokenUsage)
	return errUsage
}

// openTokens opens the store a DSN names, for the token commands.
func (e *env) openTokens(dsn string) (store.Store, *access.Tokens, error) {
	cfg := config.Default()
	cfg.Store.DSN = dsn
	st, err := app.OpenStore(e.ctx, cfg, clock.Real{}, discardLogger())
	if err != nil {
		return nil, nil, err
	}
	return st, &access.Tokens{Store: st, Now: time.Now}, nil
}

// cliActor names who ran a command in the audit log.
func cliActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

func tokenCreate(e *env, args []string) error {
	fs := e.flags("token create", "token create --store DSN --name NAME --scope read|steer|operate [--expires DURATION]")
	dsn := fs.String("store", "", "the store DSN (sqlite:PATH or postgres://...), as the server's")
	name := fs.String("name", "", "who or what the token is for")
	scope := fs.String("scope", "", "read, steer (read and Tier-0's pull API) or operate (read and operator actions)")
	expires := fs.Duration("expires", 0, "lifetime on the wall clock, e.g. 720h (default: no expiry)")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if *dsn == "" || *name == "" || *scope == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	sc, err := access.ParseScope(*scope)
	if err != nil {
		return err
	}
	st, tokens, err := e.openTokens(*dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	tok, rec, err := tokens.Create(e.ctx, *name, sc, *expires)
	if err != nil {
		return err
	}
	detail := fmt.Sprintf("made token %s (scope %s, %s)", rec.Name, rec.Scope, expiry(rec.Expires))
	if err := st.AppendAudit(e.ctx, store.AuditEntry{At: rec.Created, Actor: cliActor(), Action: "token-create", Detail: detail}); err != nil {
		return fmt.Errorf("the token was made but its audit entry was not written: %w", err)
	}
	fmt.Fprintln(e.stdout, tok)
	fmt.Fprintf(e.stderr, "token %q with scope %s made (%s); it is shown only now\n", rec.Name, rec.Scope, expiry(rec.Expires))
	return nil
}

func expiry(t time.Time) string {
	if t.IsZero() {
		return "no expiry"
	}
	return "expires " + t.Format(time.RFC3339)
}

func tokenList(e *env, args []string) error {
	fs := e.flags("token list", "token list --store DSN [--json]")
	dsn := fs.String("store", "", "the store DSN (sqlite:PATH or postgres://...), as the server's")
	asJSON := fs.Bool("json", false, "one JSON object per token instead of a table")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if *dsn == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	st, tokens, err := e.openTokens(*dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := tokens.List(e.ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		for _, t := range list {
			if err := printJSONLine(e.stdout, t); err != nil {
				return err
			}
		}
		return nil
	}
	now := time.Now()
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSCOPE\tSTATE\tCREATED\tEXPIRES\tLAST USED")
	for _, t := range list {
		state := "live"
		switch {
		case !t.Revoked.IsZero():
			state = "revoked " + stamp(t.Revoked)
		case !t.Expires.IsZero() && !now.Before(t.Expires):
			state = "expired"
		}
		exp := "never"
		if !t.Expires.IsZero() {
			exp = stamp(t.Expires)
		}
		used := "never"
		if !t.LastUsed.IsZero() {
			used = stamp(t.LastUsed)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Scope, state, stamp(t.Created), exp, used)
	}
	return tw.Flush()
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04Z") }

func tokenRevoke(e *env, args []string) error {
	fs := e.flags("token revoke", "token revoke NAME --store DSN")
	dsn := fs.String("store", "", "the store DSN (sqlite:PATH or postgres://...), as the server's")
	pos, err := e.parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if *dsn == "" || len(pos) != 1 || strings.TrimSpace(pos[0]) == "" {
		fs.Usage()
		return errUsage
	}
	st, tokens, err := e.openTokens(*dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	t, err := tokens.Revoke(e.ctx, pos[0])
	if err != nil {
		return err
	}
	detail := fmt.Sprintf("revoked token %s (scope %s)", t.Name, t.Scope)
	if err := st.AppendAudit(e.ctx, store.AuditEntry{At: t.Revoked, Actor: cliActor(), Action: "token-revoke", Detail: detail}); err != nil {
		return fmt.Errorf("the token was revoked but its audit entry was not written: %w", err)
	}
	fmt.Fprintf(e.stdout, "token %s (scope %s) revoked; a request presenting it is now refused\n", t.Name, t.Scope)
	return nil
}

// printJSONLine writes v as one line of JSON.
func printJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
