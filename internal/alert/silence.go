package alert

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
)

// A silence keeps the alerts that all its matchers match from notifying while it is in force; they are
// still evaluated, listed and shown, marked with the silence. Matchers work as Alertmanager's: "=" and
// "!=" compare the label's value (a missing label is ""), "=~" and "!~" match a regular expression
// against the whole value.

type compiledMatcher struct {
	store.Matcher
	re *regexp.Regexp
}

type compiledSilence struct {
	ID       int64
	matchers []compiledMatcher
}

func compileMatcher(m store.Matcher) (compiledMatcher, error) {
	c := compiledMatcher{Matcher: m}
	switch m.Op {
	case "=", "!=":
	case "=~", "!~":
		re, err := regexp.Compile("^(?:" + m.Value + ")$")
		if err != nil {
			return c, apperr.Errorf(apperr.Invalid, "matcher %s%s%q: bad regular expression: %v", m.Name, m.Op, m.Value, err)
		}
		c.re = re
	default:
		return c, apperr.Errorf(apperr.Invalid, "matcher %s: unknown operator %q (want =, !=, =~ or !~)", m.Name, m.Op)
	}
	return c, nil
}

func (m compiledMatcher) matches(labels map[string]string) bool {
	v := labels[m.Name]
	switch m.Op {
	case "=":
		return v == m.Value
	case "!=":
		return v != m.Value
	case "=~":
		return m.re.MatchString(v)
	}
	return !m.re.MatchString(v)
}

func compileSilence(s store.Silence) (compiledSilence, error) {
	c := compiledSilence{ID: s.ID}
	for _, m := range s.Matchers {
		cm, err := compileMatcher(m)
		if err != nil {
			return c, err
		}
		c.matchers = append(c.matchers, cm)
	}
	return c, nil
}

func (s compiledSilence) matches(labels map[string]string) bool {
	if len(s.matchers) == 0 {
		return false
	}
	for _, m := range s.matchers {
		if !m.matches(labels) {
			return false
		}
	}
	return true
}

// checkNewSilence refuses a silence an operator should not make: one without matchers, reason or
// author, with a bad matcher, one that would match every alert (every matcher accepts an empty
// label), one that ends in the past, before it starts, or after the longest silence allowed.
func checkNewSilence(s store.Silence, now time.Time, longest time.Duration) error {
	switch {
	case len(s.Matchers) == 0:
		return apperr.Errorf(apperr.Invalid, "a silence needs at least one matcher, such as alertname=workflow-late or run=400123")
	case len(s.Matchers) > 20:
		return apperr.Errorf(apperr.Invalid, "a silence has at most 20 matchers, not %d", len(s.Matchers))
	case strings.TrimSpace(s.Reason) == "":
		return apperr.Errorf(apperr.Invalid, "a reason is required: it is kept in the audit log")
	case len(s.Reason) > 2000:
		return apperr.Errorf(apperr.Invalid, "reason over 2000 characters")
	case strings.TrimSpace(s.Author) == "":
		return apperr.Errorf(apperr.Invalid, "a silence needs an author")
	case !s.Ends.After(s.Starts):
		return apperr.Errorf(apperr.Invalid, "a silence must end after it starts (%s to %s)", s.Starts.UTC().Format(time.RFC3339), s.Ends.UTC().Format(time.RFC3339))
	case !s.Ends.After(now):
		return apperr.Errorf(apperr.Invalid, "the silence would end in the past (%s)", s.Ends.UTC().Format(time.RFC3339))
	case s.Ends.Sub(s.Starts) > longest:
		return apperr.Errorf(apperr.Invalid, "a silence lasts at most %s (alerts.max_silence), not %s", longest, s.Ends.Sub(s.Starts).Round(time.Minute))
	}
	all := true
	for _, m := range s.Matchers {
		if !labelNameRE.MatchString(m.Name) {
			return apperr.Errorf(apperr.Invalid, "matcher label %q is not a label name", m.Name)
		}
		if len(m.Value) > 1000 {
			return apperr.Errorf(apperr.Invalid, "matcher %s: value over 1000 characters", m.Name)
		}
		c, err := compileMatcher(m)
		if err != nil {
			return err
		}
		all = all && c.matches(map[string]string{})
	}
	if all {
		return apperr.Errorf(apperr.Invalid, "the matchers would match every alert (each accepts a missing label): name what to silence, e.g. alertname=%s", "workflow-late")
	}
	return nil
}

var labelNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// describeSilence is a silence in one line, for the audit log.
func describeSilence(s store.Silence) string {
	var ms []string
	for _, m := range s.Matchers {
		ms = append(ms, fmt.Sprintf("%s%s%q", m.Name, m.Op, m.Value))
	}
	return fmt.Sprintf("silence %d of {%s} from %s to %s: %s", s.ID, strings.Join(ms, ", "),
		s.Starts.UTC().Format(time.RFC3339), s.Ends.UTC().Format(time.RFC3339), s.Reason)
}
