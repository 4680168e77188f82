//go:build linux

package app

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/pgtest"
	"github.com/cms-pcl/spyagency/internal/steer"
	"github.com/cms-pcl/spyagency/internal/store/postgres"
)

// Replicas as processes: the test binary runs itself as each replica (TestReplicaChild), so that the
// leader can be killed with SIGKILL or frozen with SIGSTOP as a real process is.

var failovers = flag.Int("failovers", 0, "replicas: measure the fail-over time over this many kill -9 of the leader (docs/benchmarks.md)")

const childEnv = "SPYAGENCY_REPLICA_CHILD" // name;dsn;hook URL;secret file;addr file

// TestReplicaChild is one replica when the parent test starts the binary as one; otherwise it skips.
func TestReplicaChild(t *testing.T) {
	spec := os.Getenv(childEnv)
	if spec == "" {
		t.Skip("runs only as a replica process started by the replica tests")
	}
	f := strings.Split(spec, ";")
	if len(f) != 5 {
		t.Fatalf("%s: %q", childEnv, spec)
	}
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Store.DSN = f[1]
	cfg.Agency.LeaseTTL = replicaTTL
	cfg.Agency.ResyncInterval = time.Second // the parent stores runs behind the agency's back
	for _, src := range cfg.Sources.Enabled() {
		sc, _ := cfg.Sources.ByName(src)
		sc.Enabled = false
		cfg.Sources.Set(src, sc)
	}
	cfg.Steering.Targets = []config.PushTarget{{Name: "tier0-hook", Type: "webhook", URL: f[2], SecretFile: f[3]}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	a, err := New(ctx, Options{Config: cfg, ReplicaID: f[0], Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f[4], []byte(a.Addr().String()), 0o644); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

// procCluster is replicas as processes on one schema, and the parent's own handle on the store.
type procCluster struct {
	*cluster
	st   *postgres.Store
	kids map[string]*exec.Cmd
}

func newProcCluster(t *testing.T) *procCluster {
	c := newCluster(t)
	st, err := postgres.Open(t.Context(), c.dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return &procCluster{cluster: c, st: st, kids: map[string]*exec.Cmd{}}
}

func (p *procCluster) spawn(name string) {
	t := p.t
	t.Helper()
	addrFile := filepath.Join(p.dir, name+".addr")
	cmd := exec.Command(os.Args[0], "-test.run=^TestReplicaChild$", "-test.timeout=0")
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join([]string{name, p.dsn, p.hookURL, p.secret, addrFile}, ";"))
	log, err := os.Create(filepath.Join(p.dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.kids[name] = cmd
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log.Close()
	})
}

func (p *procCluster) kill9(name string) {
	cmd := p.kids[name]
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	delete(p.kids, name)
}

// leaseBeyond waits until a replica holds a live lease of an epoch above epoch, and returns it.
func (p *procCluster) leaseBeyond(epoch int64, within time.Duration) postgres.Lease {
	p.t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		l, err := p.st.CurrentLease(p.t.Context())
		if err == nil && l.Epoch > epoch && l.Expires.After(time.Now()) {
			return l
		}
	}
	p.t.Fatalf("no replica leads an epoch above %d after %s", epoch, within)
	return postgres.Lease{}
}

// storeRun stores a new run's facts and a placeholder state due now, as a spy's batch would through
// the agency, behind the agency's back: whichever replica leads reconciles it when it looks at the
// due runs.
func (p *procCluster) storeRun(run uint32) {
	t := p.t
	ctx := t.Context()
	if _, err := p.st.AppendObservations(ctx, runBatch(run)); err != nil {
		t.Fatal(err)
	}
	rs := pcl.RunState{Run: run, NextWake: time.Now(), Decision: pcl.Decision{Run: run, State: pcl.ReadinessWaiting,
		Reason: "observed; not reconciled yet", Blocking: []string{}}}
	if err := p.st.PutRunState(ctx, rs); err != nil {
		t.Fatal(err)
	}
}

// checkDelivered waits until every run from..to-1 has a decision and the outbox is empty, then checks
// that the receiver got every stored decision's key and no other.
func (p *procCluster) checkDelivered(from, to uint32) {
	t := p.t
	ctx := t.Context()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		pending, err := p.st.PendingOutbox(ctx, "tier0-hook", time.Now().Add(time.Hour), 1000)
		if err != nil {
			t.Fatal(err)
		}
		decided := 0
		for run := from; run < to; run++ {
			if ds, err := p.st.Decisions(ctx, run); err == nil && len(ds) > 0 {
				decided++
			}
		}
		if len(pending) == 0 && decided == int(to-from) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d runs decided, %d outbox entries pending", decided, to-from, len(pending))
		}
	}
	want := map[string]bool{}
	for run := from; run < to; run++ {
		ds, err := p.st.Decisions(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			want[steer.IdempotencyKey(run, d.Version)] = true
		}
	}
	got, bad := p.hook.snapshot()
	redelivered := checkOnceEach(t, want, got, bad)
	t.Logf("%d decisions, %d keys delivered, %d redeliveries", len(want), len(got), redelivered)
}

// TestReplicaProcessesKill9AndStop: three replica processes; runs arrive all the time; the leader is
// killed with SIGKILL mid-delivery, then the next leader is frozen with SIGSTOP past its lease and
// resumed with SIGCONT. Each time another leads within 2 × TTL; every decision stored is delivered,
// none missing, none from nowhere; the resumed one steps down and no version is written twice.
func TestReplicaProcessesKill9AndStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts replica processes for about half a minute")
	}
	t.Parallel()
	p := newProcCluster(t)
	for _, n := range []string{"p1", "p2", "p3"} {
		p.spawn(n)
	}
	l := p.leaseBeyond(0, 30*time.Second)
	run := uint32(500000)
	feed := func(n int) {
		for range n {
			p.storeRun(run)
			run++
			time.Sleep(20 * time.Millisecond)
		}
	}
	feed(15)
	killed := time.Now()
	p.kill9(l.Holder)
	next := p.leaseBeyond(l.Epoch, 2*replicaTTL)
	t.Logf("kill -9 %s: %s leads epoch %d after %s", l.Holder, next.Holder, next.Epoch, time.Since(killed).Round(time.Millisecond))
	feed(15)
	frozen := p.kids[next.Holder]
	stopped := time.Now()
	if err := frozen.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	third := p.leaseBeyond(next.Epoch, 2*replicaTTL)
	t.Logf("SIGSTOP %s: %s leads epoch %d after %s", next.Holder, third.Holder, third.Epoch, time.Since(stopped).Round(time.Millisecond))
	feed(15)
	time.Sleep(replicaTTL) // frozen well past its lease
	if err := frozen.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	feed(15)
	p.checkDelivered(500000, run)
	// The resumed replica stepped down and the lease stayed with the third leader.
	time.Sleep(replicaTTL / 2)
	cur, err := p.st.CurrentLease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cur.Holder != third.Holder || cur.Epoch != third.Epoch {
		t.Errorf("lease after the resume: %+v, want %s epoch %d", cur, third.Holder, third.Epoch)
	}
	logText, err := os.ReadFile(filepath.Join(p.dir, next.Holder+".log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logText), "stepping down") {
		t.Errorf("the resumed replica's log does not say it stepped down:\n%s", logText)
	}
	for r := uint32(500000); r < run; r++ {
		ds, err := p.st.Decisions(t.Context(), r)
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range ds {
			if d.Version != int64(i+1) {
				t.Errorf("run %d: versions %v are not 1, 2, ...", r, ds)
			}
		}
	}
}

// TestFailoverTime measures the fail-over time over -failovers kill -9 of the leader among three
// replica processes: from the SIGKILL to a live lease of the next epoch. It reports the median and
// the longest (docs/benchmarks.md).
func TestFailoverTime(t *testing.T) {
	if *failovers <= 0 {
		t.Skip("measures fail-over times only with -failovers N")
	}
	_ = pgtest.DSN(t)
	p := newProcCluster(t)
	names := 0
	spawn := func() {
		names++
		p.spawn(fmt.Sprintf("f%d", names))
	}
	for range 3 {
		spawn()
	}
	l := p.leaseBeyond(0, 30*time.Second)
	run := uint32(600000)
	var times []time.Duration
	for i := range *failovers {
		for range 5 {
			p.storeRun(run)
			run++
		}
		time.Sleep(time.Duration(i%4) * replicaTTL / 4) // at different moments of the renewal cycle
		killed := time.Now()
		p.kill9(l.Holder)
		next := p.leaseBeyond(l.Epoch, 4*replicaTTL)
		took := time.Since(killed)
		times = append(times, took)
		if took > 2*replicaTTL {
			t.Errorf("kill %d: fail-over took %s, more than 2 × TTL", i+1, took)
		}
		l = next
		spawn()
	}
	p.checkDelivered(600000, run)
	slices.Sort(times)
	t.Logf("fail-over over %d kill -9 (TTL %s, 3 replicas): median %s, max %s, min %s", len(times), replicaTTL,
		times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond), times[0].Round(time.Millisecond))
}
