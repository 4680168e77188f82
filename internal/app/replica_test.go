package app

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/pgtest"
	"github.com/cms-pcl/spyagency/internal/steer"
	"github.com/cms-pcl/spyagency/internal/store"
)

// Replicas on one real PostgreSQL (internal/pgtest): in-process Apps, each reaching the database
// through a loopback proxy of its own, so that a test can cut a replica off the database at once (what
// a kill -9 or a network partition does to the others' view of it), or freeze its lease clock (what
// SIGSTOP does to its renewals) while its other parts go on.

const replicaTTL = 3 * time.Second

// dbProxy forwards loopback connections to the database until cut.
type dbProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
}

func newDBProxy(t *testing.T, target string) *dbProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dbProxy{ln: ln, target: target}
	t.Cleanup(p.Cut)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
	return p
}

func (p *dbProxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	go func() { _, _ = io.Copy(c, up); c.Close() }()
}

// Cut closes the proxy and every connection through it.
func (p *dbProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return
	}
	p.cut = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
}

// hookReceiver is Tier-0's webhook: it checks the signature and counts deliveries by idempotency key.
type hookReceiver struct {
	secret []byte
	mu     sync.Mutex
	keys   map[string]int
	bad    []string
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !steer.VerifySignature(h.secret, raw, r.Header.Get(steer.HeaderSignature)) {
		h.bad = append(h.bad, "bad signature")
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	h.keys[r.Header.Get(steer.HeaderIdempotencyKey)]++
	w.WriteHeader(http.StatusNoContent)
}

func (h *hookReceiver) snapshot() (map[string]int, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.keys))
	for k, v := range h.keys {
		out[k] = v
	}
	return out, slices.Clone(h.bad)
}

// cluster is the replicas of one test on one schema.
type cluster struct {
	t       *testing.T
	dsn     string
	dir     string
	hookURL string
	secret  string
	hook    *hookReceiver
	apps    []*App
	proxies []*dbProxy
	// configure, when set, changes each replica's configuration before it starts.
	configure func(*config.Config)
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	dsn := pgtest.Schema(t)
	dir := t.TempDir()
	c := &cluster{t: t, dsn: dsn, dir: dir, hook: &hookReceiver{secret: []byte("replica-test-secret"), keys: map[string]int{}}}
	c.secret = filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(c.secret, c.hook.secret, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.hook)
	t.Cleanup(srv.Close)
	c.hookURL = srv.URL + "/tier0"
	return c
}

// start starts replica name; leaseClock nil means the wall clock.
func (c *cluster) start(name string, leaseClock clock.Clock) *App {
	t := c.t
	t.Helper()
	u, err := url.Parse(c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := newDBProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Store.DSN = u.String()
	cfg.Agency.LeaseTTL = replicaTTL
	for _, src := range cfg.Sources.Enabled() {
		sc, _ := cfg.Sources.ByName(src)
		sc.Enabled = false
		cfg.Sources.Set(src, sc)
	}
	cfg.Steering.Targets = []config.PushTarget{{Name: "tier0-hook", Type: "webhook", URL: c.hookURL, SecretFile: c.secret}}
	if c.configure != nil {
		c.configure(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := New(t.Context(), Options{Config: cfg, ReplicaID: name, LeaseClock: leaseClock})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	c.apps = append(c.apps, a)
	c.proxies = append(c.proxies, p)
	return a
}

// leader waits until one of the replicas not in dead leads, and returns its index.
func (c *cluster) leader(dead map[int]bool, within time.Duration) int {
	c.t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for i, a := range c.apps {
			if a.Leading() && !dead[i] {
				return i
			}
		}
	}
	c.t.Fatalf("no replica leads %s after asking", within)
	return -1
}

// runBatch is what the spies would report of a new run: it is stopped and expects a workflow, so the
// agency decides a first version (waiting) at once.
func runBatch(run uint32) []pcl.Observation {
	stop := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	return []pcl.Observation{
		{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: run, At: stop, RunInfo: &pcl.RunInfo{Start: stop.Add(-time.Hour), Stop: &stop, Class: "Collisions25", LastUpdate: stop}},
		{Source: pcl.SourceTier0, Kind: pcl.KindExpressConfig, Run: run, At: stop, Stream: "Express", Producers: []string{"PromptCalibProdSiStripGains"}},
	}
}

// TestReplicasFailOver: two and three replicas on one database, runs arriving all the time at the
// leader; the leader is cut off the database in the middle of the deliveries, once with two replicas
// and twice with three. A follower leads within 2 × lease TTL, the deposed one stops, and every
// decision stored reaches the receiver, no key missing and none from nowhere.
func TestReplicasFailOver(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d-replicas", n), func(t *testing.T) {
			t.Parallel()
			c := newCluster(t)
			for i := range n {
				c.start(fmt.Sprintf("r%d", i+1), nil)
			}
			dead := map[int]bool{}
			lead := c.leader(dead, 2*replicaTTL)
			ctx := t.Context()
			next := uint32(400000)
			feed := func(count int) {
				for range count {
					batch := runBatch(next)
					for deadline := time.Now().Add(4 * replicaTTL); ; time.Sleep(20 * time.Millisecond) {
						err := c.apps[lead].Agency.Ingest(ctx, pcl.SourceOMS, batch)
						if err == nil {
							break
						}
						if time.Now().After(deadline) {
							t.Fatalf("run %d: no replica took it: %v", next, err)
						}
						lead = c.leader(dead, 2*replicaTTL)
					}
					next++
					time.Sleep(10 * time.Millisecond)
				}
			}
			feed(20)
			for kill := range n - 1 {
				cut := time.Now()
				c.proxies[lead].Cut()
				dead[lead] = true
				deposed := c.apps[lead]
				lead = c.leader(dead, 2*replicaTTL)
				took := time.Since(cut)
				t.Logf("kill %d: %s leads %s after the cut", kill+1, c.apps[lead].lead.self, took.Round(time.Millisecond))
				if took > 2*replicaTTL {
					t.Errorf("kill %d: fail-over took %s, more than 2 × TTL", kill+1, took)
				}
				// The deposed replica stepped down: its renewals fail.
				for deadline := time.Now().Add(replicaTTL); ; time.Sleep(20 * time.Millisecond) {
					if leads, _ := deposed.lead.Leading(); !leads && deposed.leaderStore.fenced.Load() == nil {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("kill %d: the replica cut off still leads a TTL later", kill+1)
					}
				}
				feed(20)
			}
			// Everything stored is decided and delivered: wait until every run has a decision and the outbox is empty.
			st := c.apps[lead].Store
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				pending, err := st.PendingOutbox(ctx, "tier0-hook", time.Now().Add(time.Hour), 1000)
				if err != nil {
					t.Fatal(err)
				}
				decided := 0
				for run := uint32(400000); run < next; run++ {
					if ds, err := st.Decisions(ctx, run); err == nil && len(ds) > 0 {
						decided++
					}
				}
				if len(pending) == 0 && decided == int(next-400000) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d runs decided, %d outbox entries still pending", decided, next-400000, len(pending))
				}
			}
			want := map[string]bool{}
			for run := uint32(400000); run < next; run++ {
				ds, err := st.Decisions(ctx, run)
				if err != nil {
					t.Fatal(err)
				}
				if len(ds) == 0 {
					t.Errorf("run %d: no decision stored", run)
				}
				for _, d := range ds {
					want[steer.IdempotencyKey(run, d.Version)] = true
				}
			}
			got, bad := c.hook.snapshot()
			redelivered := checkOnceEach(t, want, got, bad)
			t.Logf("%d decisions, %d keys delivered, %d redeliveries (a delivery whose mark the cut lost; the key makes them one)", len(want), len(got), redelivered)
		})
	}
}

// TestFrozenLeaderFenced: a leader whose lease clock stands still (what SIGSTOP does to its renewals)
// while its other parts go on is taken over when its lease expires; from then on the store accepts none
// of its leader-only writes, and when its clock moves again (SIGCONT) its next renewal finds the lease
// taken and it steps down. An override made on a follower is recorded and reconciled by the leader.
func TestFrozenLeaderFenced(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	frozen := clock.NewFake(time.Now())
	zombie := c.start("frozen", frozen)
	c.leader(nil, 2*replicaTTL)
	ctx := t.Context()
	if err := zombie.Agency.Ingest(ctx, pcl.SourceOMS, runBatch(400001)); err != nil {
		t.Fatal(err)
	}
	waitDecision := func(st store.Store, run uint32, version int64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if ds, err := st.Decisions(ctx, run); err == nil && len(ds) >= int(version) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %d: no decision v%d", run, version)
			}
		}
	}
	waitDecision(zombie.Store, 400001, 1)
	other := c.start("live", nil)
	took := c.leader(map[int]bool{0: true}, 3*replicaTTL)
	if c.apps[took] != other {
		t.Fatalf("replica %d leads", took)
	}
	if leads, epoch := zombie.lead.Leading(); !leads || epoch != 1 {
		t.Fatalf("the frozen replica believes leads=%v epoch %d; the test wants it to believe it still leads epoch 1", leads, epoch)
	}
	_, epoch := other.lead.Leading()
	if epoch != 2 {
		t.Fatalf("the live replica leads epoch %d, want 2", epoch)
	}
	// Every leader-only write of the frozen replica is refused and changes nothing.
	prev, err := other.Store.RunState(ctx, 400001)
	if err != nil {
		t.Fatal(err)
	}
	d := prev.Decision
	d.Version++
	d.Reason = "written by a deposed leader"
	_, err = zombie.Store.SaveDecision(ctx, store.DecisionWrite{Decision: d, State: prev,
		Outbox: []store.OutboxEntry{{Target: "tier0-hook", Run: 400001, Version: d.Version, Payload: []byte(`{}`), Created: time.Now(), NextAttempt: time.Now()}}})
	if apperr.CodeOf(err) != apperr.Conflict {
		t.Errorf("the frozen replica's decision: %v, want a conflict", err)
	}
	if ds, _ := other.Store.Decisions(ctx, 400001); len(ds) != 1 {
		t.Errorf("run 400001 has %d decisions after the frozen replica's write, want 1", len(ds))
	}
	entries, err := other.Store.Outbox(ctx, "tier0-hook", 10)
	if err != nil || len(entries) == 0 {
		t.Fatalf("outbox: %v, %v", entries, err)
	}
	if err := zombie.Store.MarkFailed(ctx, entries[0].ID, time.Now(), time.Now().Add(time.Hour), "deposed", true); apperr.CodeOf(err) != apperr.Conflict {
		t.Errorf("the frozen replica's failed attempt: %v, want a conflict", err)
	}
	if _, err := zombie.Store.SaveAlerts(ctx, store.AlertWrite{}); apperr.CodeOf(err) != apperr.Conflict {
		t.Errorf("the frozen replica's alerts: %v, want a conflict", err)
	}
	// Nor does it push: its pushers ask the store whether its epoch still leads before each attempt.
	if err := zombie.stillLeads(ctx); !errors.Is(err, errNotLeader) {
		t.Errorf("the frozen replica's push gate: %v, want errNotLeader", err)
	}
	if err := other.stillLeads(ctx); err != nil {
		t.Errorf("the live leader's push gate: %v", err)
	}
	// An override on the frozen replica, now a follower in the store's eyes: recorded, and the live
	// leader reconciles it (a hold makes the run's decision a new version).
	rs, err := replicaOverrider{zombie.Agency, zombie.Store}.Override(ctx, 400001, pcl.OverrideHold, "", "op", "hold from a follower")
	if err != nil {
		t.Fatalf("override on a follower: %v", err)
	}
	if rs.Decision.Version != 1 {
		t.Errorf("the follower reconciled the override itself: version %d", rs.Decision.Version)
	}
	waitDecision(other.Store, 400001, 2)
	ds, _ := other.Store.Decisions(ctx, 400001)
	if last := ds[len(ds)-1]; last.State != pcl.ReadinessHeld {
		t.Errorf("after the follower's hold the decision is %s (%s), want held", last.State, last.Reason)
	}
	// SIGCONT: the frozen clock moves again; the next renewal finds the lease taken.
	frozen.Set(time.Now())
	for deadline := time.Now().Add(replicaTTL); ; time.Sleep(20 * time.Millisecond) {
		if leads, _ := zombie.lead.Leading(); !leads && zombie.leaderStore.fenced.Load() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the resumed replica still believes it leads")
		}
		frozen.Advance(replicaTTL / 3)
	}
	if leads, e := other.lead.Leading(); !leads || e != 2 {
		t.Errorf("the live replica: leads=%v epoch %d after the resume, want epoch 2 still", leads, e)
	}
}

// TestClusterAndReadiness: GET /api/v1/cluster names the leader, its epoch and the live replicas from
// every replica; a graceful Close hands the lease over at once; /readyz fails on a replica cut off the
// database.
func TestClusterAndReadiness(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a, b := c.start("a", nil), c.start("b", nil)
	first := c.apps[c.leader(nil, 2*replicaTTL)]
	var cl struct {
		Self    string   `json:"self"`
		Leader  string   `json:"leader"`
		Epoch   int64    `json:"epoch"`
		Members []string `json:"members"`
	}
	for deadline := time.Now().Add(2 * replicaTTL); ; time.Sleep(20 * time.Millisecond) {
		if err := getJSONFrom("http://"+b.Addr().String()+"/api/v1/cluster", &cl); err != nil {
			t.Fatal(err)
		}
		if len(cl.Members) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster from b: %+v, want both members", cl)
		}
	}
	if cl.Self != "b" || cl.Leader != first.lead.self || cl.Epoch != 1 || !slices.Equal(cl.Members, []string{"a", "b"}) {
		t.Errorf("cluster from b: %+v", cl)
	}
	for _, x := range []*App{a, b} {
		if code := statusOf(t, "http://"+x.Addr().String()+"/readyz"); code != http.StatusOK {
			t.Errorf("%s /readyz: %d", x.lead.self, code)
		}
	}
	// A graceful Close hands over: the other leads well before the TTL would have run out.
	second := a
	if first == a {
		second = b
	}
	closed := time.Now()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	for deadline := closed.Add(replicaTTL); ; time.Sleep(20 * time.Millisecond) {
		if leads, e := second.lead.Leading(); leads && e == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no hand-over on Close: the follower did not lead within a TTL")
		}
	}
	if err := getJSONFrom("http://"+second.Addr().String()+"/api/v1/cluster", &cl); err != nil {
		t.Fatal(err)
	}
	if cl.Leader != second.lead.self || cl.Epoch != 2 || !slices.Equal(cl.Members, []string{second.lead.self}) {
		t.Errorf("cluster after the hand-over: %+v", cl)
	}
	// Cut off the database, the replica is not ready.
	c.proxies[slices.Index(c.apps, second)].Cut()
	if code := statusOf(t, "http://"+second.Addr().String()+"/readyz"); code == http.StatusOK {
		t.Error("/readyz is 200 on a replica cut off its database")
	}
}

func getJSONFrom(u string, v any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func statusOf(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestFollowerLiveStream: a run the leader decides reaches the live stream (GET /events) of a
// follower's page, through the store's notifications.
func TestFollowerLiveStream(t *testing.T) {
	t.Parallel()
	c, lead := twoReplicas(t)
	leader, follower := c.apps[lead], c.apps[1-lead]
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+follower.Addr().String()+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /events on the follower: %s", resp.Status)
	}
	lines := make(chan string, 256)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// The follower listens from its start; a run decided before LISTEN ran would not be heard, so the
	// leader decides runs until one is.
	for run, deadline := uint32(410000), time.Now().Add(15*time.Second); ; run++ {
		if err := leader.Agency.Ingest(ctx, pcl.SourceOMS, runBatch(run)); err != nil {
			t.Fatal(err)
		}
		wait := time.After(500 * time.Millisecond)
		for heard := false; !heard; {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatal("the follower's stream ended")
				}
				if strings.HasPrefix(l, "data:") && strings.Contains(l, fmt.Sprintf(`"run":%d`, run)) {
					return
				}
			case <-wait:
				heard = true // not this one: try the next run
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no run the leader decided reached the follower's live stream")
		}
	}
}

// TestNewLeaderCatchesUp: a replica that starts to lead reads what the leader before it stored: the
// first condition-safe run Tier-0 reported to it (which every reconcile takes), and the runs it
// opened.
func TestNewLeaderCatchesUp(t *testing.T) {
	t.Parallel()
	c, lead := twoReplicas(t)
	first, second := c.apps[lead], c.apps[1-lead]
	ctx := t.Context()
	const run = 430000
	batch := append(runBatch(run), pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindFCSR, Run: run - 5, At: time.Now().UTC().Truncate(time.Second)})
	if err := first.Agency.Ingest(ctx, pcl.SourceTier0, batch); err != nil {
		t.Fatal(err)
	}
	if first.Agency.FCSR() != run-5 || second.Agency.FCSR() != 0 {
		t.Fatalf("FCSR %d on the leader, %d on the follower: the test shows nothing", first.Agency.FCSR(), second.Agency.FCSR())
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	c.leader(map[int]bool{lead: true}, 2*replicaTTL)
	// Leading is noted when the lease is taken; the term's catch-up reads follow.
	for deadline := time.Now().Add(5 * time.Second); second.Agency.FCSR() != run-5; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the new leader's FCSR is %d, want %d", second.Agency.FCSR(), run-5)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); !slices.Contains(second.Agency.OpenRuns(), run); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the new leader's open runs %v lack run %d", second.Agency.OpenRuns(), run)
		}
	}
}

// TestAlertsFollowTheLeader: only the leader evaluates alerts; a follower's Alerts page shows the
// alerts the leader stored, and after a fail-over the new leader goes on with the same episode (same
// ID, same start) instead of raising it again.
func TestAlertsFollowTheLeader(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.configure = func(cfg *config.Config) {
		cfg.Alerts.Rules.RunHeld.After = time.Second
		cfg.Alerts.Rules.RunHeld.For = 0
	}
	c.start("a", nil)
	c.start("b", nil)
	lead := c.leader(nil, 2*replicaTTL)
	first, second := c.apps[lead], c.apps[1-lead]
	ctx := t.Context()
	const run = 440000
	if err := first.Agency.Ingest(ctx, pcl.SourceOMS, runBatch(run)); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Agency.Override(ctx, run, pcl.OverrideHold, "", "alice", "pixel alignment looks odd"); err != nil {
		t.Fatal(err)
	}
	held := func(alerts []store.Alert) (store.Alert, bool) {
		for _, a := range alerts {
			if a.Rule == "run-held" {
				return a, true
			}
		}
		return store.Alert{}, false
	}
	var raised store.Alert
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err := first.Alerts.Evaluate(ctx); err != nil {
			t.Fatal(err)
		}
		if a, ok := held(first.Alerts.Active()); ok && a.ID != 0 {
			raised = a
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader raised no run-held alert: %+v", first.Alerts.Active())
		}
	}
	// The follower shows it within a look at the lease (a third of the TTL).
	for deadline := time.Now().Add(3 * replicaTTL); ; time.Sleep(50 * time.Millisecond) {
		if a, ok := held(second.Alerts.Active()); ok {
			if a.ID != raised.ID {
				t.Fatalf("the follower shows alert %d, the leader stored %d", a.ID, raised.ID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the follower's alerts lack the leader's run-held: %+v", second.Alerts.Active())
		}
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	c.leader(map[int]bool{lead: true}, 2*replicaTTL)
	if !slices.Contains(second.Agency.OpenRuns(), run) {
		t.Fatalf("the new leader leads before it caught up with run %d: open %v", run, second.Agency.OpenRuns())
	}
	if err := second.Alerts.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	a, ok := held(second.Alerts.Active())
	if !ok || a.ID != raised.ID || !a.Active.Equal(raised.Active) {
		t.Fatalf("after the fail-over the run-held alert is %+v (found %v), want the leader's episode %d from %s", a, ok, raised.ID, raised.Active)
	}
	live, err := second.Store.LiveAlerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range live {
		if l.Rule == "run-held" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d run-held alerts stored after the fail-over, want the one episode", n)
	}
}

// TestFollowerRepublishesAfterLostNotifications: a note the leader sends while a follower is not
// listening (its session broke) is lost to it; once the follower listens again it reads the open runs
// from the store and hands them to its live stream, so the page does not keep a stale run until reload.
func TestFollowerRepublishesAfterLostNotifications(t *testing.T) {
	t.Parallel()
	c, lead := twoReplicas(t)
	leader, follower := c.apps[lead], c.apps[1-lead]
	ctx := t.Context()
	db, err := pgx.Connect(ctx, c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.WithoutCancel(ctx))
	const listening = "query LIKE 'LISTEN %' AND query LIKE '%' || current_schema() || '%'"
	listeners := func() int {
		var n int
		if err := db.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE "+listening).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitListeners := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); listeners() != want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("want %d listeners, have %d", want, listeners())
			}
		}
	}
	waitListeners(2)
	events, unsubscribe := follower.feed.Subscribe(256)
	defer unsubscribe()
	// Every replica's listening session breaks; each listens again a second later.
	if _, err := db.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "+listening); err != nil {
		t.Fatal(err)
	}
	waitListeners(0)
	const run = 450000
	if err := leader.Agency.Ingest(ctx, pcl.SourceOMS, runBatch(run)); err != nil {
		t.Fatal(err)
	}
	if _, err := leader.Agency.Reconcile(ctx, run); err != nil {
		t.Fatal(err)
	}
	if ds, err := leader.Store.Decisions(ctx, run); err != nil || len(ds) == 0 {
		t.Fatalf("the leader decided nothing for run %d: %v %v", run, ds, err)
	}
	if listeners() != 0 {
		t.Skip("a replica listened again before the leader's decision: the note was not lost, nothing to test")
	}
	for deadline := time.After(15 * time.Second); ; {
		select {
		case e := <-events:
			if e.Run == run {
				if e.State.Decision.Version == 0 {
					t.Fatalf("run %d republished without its decision: %+v", run, e.State.Decision)
				}
				return
			}
		case <-deadline:
			t.Fatalf("run %d, decided while the follower did not listen, never reached its live stream", run)
		}
	}
}

// twoReplicas starts replicas a and b on a new cluster and waits for one to lead.
func twoReplicas(t *testing.T) (c *cluster, lead int) {
	t.Helper()
	c = newCluster(t)
	c.start("a", nil)
	c.start("b", nil)
	return c, c.leader(nil, 2*replicaTTL)
}

// checkOnceEach checks a receiver's deliveries against the decisions stored (want, by idempotency
// key): none refused, every one delivered, none that is not stored. It returns how many deliveries
// came again under a key already delivered (legal: a delivery whose mark was lost).
func checkOnceEach(t *testing.T, want map[string]bool, got map[string]int, bad []string) (redelivered int) {
	t.Helper()
	if len(bad) > 0 {
		t.Errorf("bad deliveries: %v", bad)
	}
	for k, n := range got {
		if !want[k] {
			t.Errorf("key %s delivered but no such decision is stored", k)
		}
		redelivered += n - 1
	}
	for k := range want {
		if got[k] == 0 {
			t.Errorf("decision %s never delivered", k)
		}
	}
	return redelivered
}
