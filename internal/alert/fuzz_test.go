package alert

import (
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/store"
)

// FuzzSilence: whatever matchers a client sends, checking and matching a silence never panics, and a
// silence that passes the checks matches no alert without labels (it would silence everything).
func FuzzSilence(f *testing.F) {
	for _, seed := range [][3]string{
		{"alertname", "=", "workflow-late"}, {"run", "=~", "4001(2|3).*"}, {"workflow", "!=", "SiStripGains"},
		{"source", "!~", "oms|dqm"}, {"run", "=~", "("}, {"9x", "=", ""}, {"alertname", "~", "x"}, {"run", "=~", ".*"},
	} {
		f.Add(seed[0], seed[1], seed[2], "upload-failed", "400123")
	}
	f.Fuzz(func(t *testing.T, name, op, value, alertname, run string) {
		now := time.Date(2026, 5, 4, 6, 0, 0, 0, time.UTC)
		s := store.Silence{Matchers: []store.Matcher{{Name: name, Op: op, Value: value}}, Author: "jdoe", Reason: "fuzz",
			Starts: now, Ends: now.Add(time.Hour)}
		if checkNewSilence(s, now, 24*time.Hour) != nil {
			return
		}
		c, err := compileSilence(s)
		if err != nil {
			t.Fatalf("a silence that passed the checks does not compile: %v", err)
		}
		if c.matches(map[string]string{}) {
			t.Fatalf("silence %+v passed the checks and matches every alert", s.Matchers)
		}
		_ = c.matches(map[string]string{"alertname": alertname, "run": run})
	})
}
