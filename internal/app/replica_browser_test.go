package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// TestFollowerPageLiveInABrowser: a follower's board, open in Chromium, shows a hold the leader
// decides without a reload: the leader's event crosses to the follower through the store's
// notifications and its live stream.
func TestFollowerPageLiveInABrowser(t *testing.T) {
	t.Parallel()
	exe := chromium(t)
	c := newCluster(t)
	c.start("a", nil)
	c.start("b", nil)
	lead := c.leader(nil, 2*replicaTTL)
	leader, follower := c.apps[lead], c.apps[1-lead]
	ctx := t.Context()
	const run = 420000
	if err := leader.Agency.Ingest(ctx, pcl.SourceOMS, runBatch(run)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if ds, err := leader.Store.Decisions(ctx, run); err == nil && len(ds) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no first decision")
		}
	}
	bctx := startChromium(t, exe)
	eval := func(expr string) string {
		t.Helper()
		c, cancel := context.WithTimeout(bctx, 10*time.Second)
		defer cancel()
		v, err := chromedp.Run(c, chromedp.Evaluate[string](`String(`+expr+`)`))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	waitFor := func(what, expr string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); eval(`!!(`+expr+`)`) != "true"; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waited 20 s for %s (%s)", what, expr)
			}
		}
	}
	nctx, ncancel := context.WithTimeout(bctx, 30*time.Second)
	if _, err := chromedp.RunResponse(nctx, chromedp.Navigate("http://"+follower.Addr().String()+"/")); err != nil {
		ncancel()
		t.Fatalf("open the follower's board: %v", err)
	}
	ncancel()
	waitFor("the live stream", `document.getElementById('live').textContent.includes('connected')`)
	row := fmt.Sprintf(`(document.getElementById('run-%d')||{textContent:''}).textContent`, run)
	waitFor("the run's row", row+`.length > 0`)
	if got := eval(row); strings.Contains(got, "held") {
		t.Fatalf("the row shows held before the hold: %q", got)
	}
	// The listener may have missed notifications sent before it listened; a hold now is heard.
	if _, err := leader.Agency.Override(ctx, run, pcl.OverrideHold, "", "op", "hold on the leader"); err != nil {
		t.Fatal(err)
	}
	waitFor("the hold on the follower's page", row+`.includes('held')`)
}
