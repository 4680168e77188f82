package steer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

var testSecret = []byte("s3cret-shared-with-tier0")

// pushSetup is a store on a fake clock, a webhook receiver and a webhook target pointing at it.
type pushSetup struct {
	clk  *clock.Fake
	st   store.Store
	rcv  *receiver
	hook *Webhook
}

func newPushSetup(t *testing.T) *pushSetup {
	t.Helper()
	clk := clock.NewFake(t0)
	rcv := newReceiver(t, testSecret)
	hook, err := NewWebhook(WebhookOptions{Name: "tier0", URL: rcv.srv.URL + "/spyagency", Secret: testSecret, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return &pushSetup{clk: clk, st: openStore(t, clk), rcv: rcv, hook: hook}
}

func (s *pushSetup) pusher(t *testing.T, o PusherOptions) *Pusher {
	t.Helper()
	if o.Outbox == nil {
		o.Outbox = s.st
	}
	o.Target, o.Clock = s.hook, s.clk
	p, err := NewPusher(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// drive runs the pusher as Run would, but on the fake clock and without goroutines: a pass, then the
// clock jumps to when the pass asked to be called again, until until says stop.
func (s *pushSetup) drive(t *testing.T, p *Pusher, until func() bool, before func(now time.Time)) {
	t.Helper()
	for i := 0; !until(); i++ {
		if i > 100_000 {
			t.Fatal("pusher did not settle")
		}
		if before != nil {
			before(s.clk.Now())
		}
		next, err := p.Tick(context.Background())
		if err != nil {
			t.Fatalf("tick at %s: %v", s.clk.Now(), err)
		}
		if !next.After(s.clk.Now()) {
			next = s.clk.Now().Add(time.Second) // a full batch: the next pass a moment later
		}
		s.clk.Set(next)
	}
}

func (s *pushSetup) pending(t *testing.T) []store.OutboxEntry {
	t.Helper()
	es, err := s.st.PendingOutbox(context.Background(), "tier0", s.clk.Now().Add(lookAhead), 0)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestPushDeliversInRunOrderSigned(t *testing.T) {
	t.Parallel()
	s := newPushSetup(t)
	now := s.clk.Now()
	// Written in decision order; delivered in run order, then version order.
	decide(t, s.st, now, 101, pcl.ReadinessWaiting, false, "tier0", "other")
	decide(t, s.st, now, 100, pcl.ReadinessWaiting, false, "tier0")
	decide(t, s.st, now, 102, pcl.ReadinessReady, true, "tier0")
	decide(t, s.st, now, 100, pcl.ReadinessReady, true, "tier0")
	p := s.pusher(t, PusherOptions{Seed: 1})
	if _, err := p.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	requests, accepted := s.rcv.snapshot()
	want := []string{"100:1", "100:2", "101:1", "102:1"}
	if !slices.Equal(requests, want) || !slices.Equal(accepted, want) {
		t.Fatalf("receiver saw %v (accepted %v), want %v: once each, in run then version order", requests, accepted, want)
	}
	if s.rcv.badSigs != 0 {
		t.Errorf("%d deliveries failed signature verification", s.rcv.badSigs)
	}
	b := s.rcv.bodies["100:2"]
	if b.Run != 100 || b.Version != 2 || b.State != pcl.ReadinessReady || !b.Ready || b.Reason != "test: ready" || !b.Decided.Equal(now) {
		t.Errorf("body of 100:2: %+v", b)
	}
	if b := s.rcv.bodies["101:1"]; b.Ready || !slices.Equal(b.Blocking, []string{"SiPixelAli"}) {
		t.Errorf("body of 101:1: %+v, want not ready, blocked by SiPixelAli", b)
	}
	if left := s.pending(t); len(left) != 0 {
		t.Errorf("still pending: %+v", left)
	}
	// Another target's entries are untouched.
	other, err := s.st.PendingOutbox(context.Background(), "other", now, 0)
	if err != nil || len(other) != 1 {
		t.Errorf("other target: %+v (%v), want its one entry still pending", other, err)
	}
	// Nothing left: a second pass sends nothing.
	if _, err := p.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if requests, _ := s.rcv.snapshot(); len(requests) != len(want) {
		t.Errorf("second pass sent again: %v", requests)
	}
}

// crashingOutbox fails MarkDelivered after ok successes: the process dying between the receiver taking
// a decision and the store recording it.
type crashingOutbox struct {
	Outbox
	ok int
}

func (c *crashingOutbox) MarkDelivered(ctx context.Context, id int64, at time.Time) error {
	if c.ok == 0 {
		return errors.New("process killed")
	}
	c.ok--
	return c.Outbox.MarkDelivered(ctx, id, at)
}

func TestPushCrashBetweenDeliveryAndRecordIsAtLeastOnce(t *testing.T) {
	t.Parallel()
	s := newPushSetup(t)
	for run := uint32(100); run < 105; run++ {
		decide(t, s.st, s.clk.Now(), run, pcl.ReadinessReady, true, "tier0")
	}
	dying := s.pusher(t, PusherOptions{Outbox: &crashingOutbox{Outbox: s.st, ok: 2}})
	if _, err := dying.Tick(context.Background()); err == nil || !strings.Contains(err.Error(), "process killed") {
		t.Fatalf("tick with a failing store: %v, want the store's error", err)
	}
	requests, _ := s.rcv.snapshot()
	if !slices.Equal(requests, []string{"100:1", "101:1", "102:1"}) {
		t.Fatalf("before the crash the receiver saw %v, want 100..102 and nothing after the failed record", requests)
	}

	restarted := s.pusher(t, PusherOptions{})
	s.clk.Advance(time.Minute)
	if _, err := restarted.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	requests, accepted := s.rcv.snapshot()
	want := []string{"100:1", "101:1", "102:1", "103:1", "104:1"}
	if !slices.Equal(accepted, want) {
		t.Errorf("receiver's de-duplicated keys %v, want exactly %v in run order", accepted, want)
	}
	if count(requests, "102:1") != 2 || len(requests) != 6 {
		t.Errorf("requests %v: want 102:1 twice (delivered, not recorded, delivered again) and every other key once", requests)
	}
	if left := s.pending(t); len(left) != 0 {
		t.Errorf("still pending after restart: %+v", left)
	}
}

func TestPushReceiverDownForHours(t *testing.T) {
	t.Parallel()
	s := newPushSetup(t)
	down := 6 * time.Hour
	recoverAt := t0.Add(down)
	var mu sync.Mutex
	downRequests := map[string]int{}
	s.rcv.setRespond(func(key string) (int, http.Header) {
		if s.clk.Now().Before(recoverAt) {
			mu.Lock()
			downRequests[key]++
			mu.Unlock()
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusOK, nil
	})
	decide(t, s.st, t0, 100, pcl.ReadinessWaiting, false, "tier0")
	decide(t, s.st, t0, 101, pcl.ReadinessWaiting, false, "tier0")
	// More decisions arrive while the receiver is down.
	later := []struct {
		at    time.Duration
		run   uint32
		state pcl.Readiness
	}{{time.Hour, 100, pcl.ReadinessReady}, {90 * time.Minute, 102, pcl.ReadinessWaiting},
		{3 * time.Hour, 101, pcl.ReadinessReady}, {5 * time.Hour, 102, pcl.ReadinessReady}}
	p := s.pusher(t, PusherOptions{Seed: 7})
	s.drive(t, p, func() bool { return s.clk.Now().After(recoverAt) && len(later) == 0 && len(s.pending(t)) == 0 },
		func(now time.Time) {
			for len(later) > 0 && !now.Before(t0.Add(later[0].at)) {
				decide(t, s.st, now, later[0].run, later[0].state, later[0].state == pcl.ReadinessReady, "tier0")
				later = later[1:]
			}
		})

	_, accepted := s.rcv.snapshot()
	want := []string{"100:1", "100:2", "101:1", "101:2", "102:1", "102:2"}
	if !slices.Equal(accepted, want) {
		t.Errorf("after recovery the receiver has %v, want %v: everything, in order, once", accepted, want)
	}
	requests, _ := s.rcv.snapshot()
	for _, k := range want[1:] {
		if n := count(requests, k); n != 1 {
			t.Errorf("%s requested %d times, want once: only the head of the line is retried while the receiver is down", k, n)
		}
	}
	// Backoff from 1 s doubling to 10 min, drawn from the upper half: over 6 h between 36 and 84 tries.
	if n := downRequests["100:1"]; n < int(down/(10*time.Minute)) || n > int(down/(5*time.Minute))+12 {
		t.Errorf("%d attempts during %s down, want backoff to space them between 5 and 10 minutes", n, down)
	}
	if len(downRequests) != 1 {
		t.Errorf("keys tried while down: %v, want only the head of the line", downRequests)
	}
	all, err := s.st.Outbox(context.Background(), "tier0", 0)
	if err != nil {
		t.Fatal(err)
	}
	var first time.Time
	for _, e := range all {
		if e.Dead || e.Delivered == nil {
			t.Errorf("entry %d:%d dead=%v delivered=%v", e.Run, e.Version, e.Dead, e.Delivered)
			continue
		}
		if first.IsZero() || e.Delivered.Before(first) {
			first = *e.Delivered
		}
	}
	if lag := first.Sub(recoverAt); lag < 0 || lag > 10*time.Minute {
		t.Errorf("first delivery %s after recovery, want within the 10 min backoff cap", lag)
	}
}

func TestPushPermanentErrorIsDeadLetterAtOnce(t *testing.T) {
	t.Parallel()
	s := newPushSetup(t)
	s.refusingRun100(t)
	var dead []store.OutboxEntry
	p := s.pusher(t, PusherOptions{OnDeadLetter: func(e store.OutboxEntry, err error) { dead = append(dead, e) }})
	if _, err := p.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	decide(t, s.st, s.clk.Now(), 100, pcl.ReadinessReady, true, "tier0")
	for range 10 {
		s.clk.Advance(time.Hour)
		if _, err := p.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	requests, accepted := s.rcv.snapshot()
	if n := count(requests, "100:1"); n != 1 {
		t.Errorf("the refused delivery was tried %d times, want once: a 4xx is not retried", n)
	}
	if !slices.Equal(accepted, []string{"101:1", "100:2"}) {
		t.Errorf("accepted %v, want 101:1 (not held back by a dead letter) then the newer 100:2", accepted)
	}
	if len(dead) != 1 || dead[0].Run != 100 || dead[0].Version != 1 || !dead[0].Dead || dead[0].Attempts != 1 {
		t.Errorf("OnDeadLetter got %+v, want run 100 v1 after 1 attempt", dead)
	}
	all, _ := s.st.Outbox(context.Background(), "tier0", 0)
	for _, e := range all {
		if e.Run == 100 && e.Version == 1 && (!e.Dead || e.Attempts != 1 || !strings.Contains(e.LastError, "422")) {
			t.Errorf("stored entry: %+v, want dead after 1 attempt with the 422 kept", e)
		}
	}
	audit, err := s.st.Audit(context.Background(), store.AuditQuery{Run: 100})
	if err != nil {
		t.Fatal(err)
	}
	var letters []store.AuditEntry
	for _, a := range audit {
		if a.Action == "dead-letter" {
			letters = append(letters, a)
		}
	}
	if len(letters) != 1 || !strings.Contains(letters[0].Detail, "refused by the receiver") || !strings.Contains(letters[0].Detail, "version 1") {
		t.Errorf("dead-letter audit entries: %+v, want one saying the receiver refused version 1", letters)
	}
}

func TestPushRetriesExhaustedIsDeadLetter(t *testing.T) {
	t.Parallel()
	s := newPushSetup(t)
	s.rcv.setRespond(func(string) (int, http.Header) { return http.StatusBadGateway, nil })
	decide(t, s.st, t0, 100, pcl.ReadinessReady, true, "tier0")
	p := s.pusher(t, PusherOptions{MaxAttempts: 3})
	s.drive(t, p, func() bool { return len(s.pending(t)) == 0 }, nil)
	s.clk.Advance(24 * time.Hour)
	if _, err := p.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if requests, _ := s.rcv.snapshot(); len(requests) != 3 {
		t.Errorf("%d requests, want exactly MaxAttempts=3", len(requests))
	}
	audit, _ := s.st.Audit(context.Background(), store.AuditQuery{Run: 100})
	if len(audit) == 0 || audit[0].Action != "dead-letter" || !strings.Contains(audit[0].Detail, "retries exhausted") {
		t.Errorf("newest audit entry %+v, want the dead letter after retries", audit)
	}
}

func TestPushBackoff(t *testing.T) {
	t.Parallel()
	s := newPushSetup(t)
	mk := func(seed uint64) *Pusher {
		return s.pusher(t, PusherOptions{Seed: seed, BaseBackoff: time.Second, MaxBackoff: time.Minute})
	}
	a, b, c := mk(3), mk(3), mk(4)
	var sa, sc []time.Duration
	for n := 1; n <= 12; n++ {
		da, db, dc := a.backoff(n, 0), b.backoff(n, 0), c.backoff(n, 0)
		if da != db {
			t.Fatalf("same seed, attempt %d: %s vs %s", n, da, db)
		}
		full := min(time.Second<<(n-1), time.Minute)
		if da < full/2 || da > full {
			t.Errorf("attempt %d: %s outside [%s, %s]", n, da, full/2, full)
		}
		sa, sc = append(sa, da), append(sc, dc)
	}
	if slices.Equal(sa, sc) {
		t.Errorf("seeds 3 and 4 give the same schedule %v: no jitter", sa)
	}
	if d := a.backoff(1, 45*time.Second); d < 45*time.Second {
		t.Errorf("Retry-After 45s gave %s", d)
	}
	if d := a.backoff(1, 10*time.Hour); d > time.Minute {
		t.Errorf("Retry-After of 10h gave %s, want capped at MaxBackoff", d)
	}
}

func TestPushHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	s := newPushSetup(t)
	s.rcv.setRespond(func(string) (int, http.Header) {
		return http.StatusTooManyRequests, http.Header{"Retry-After": {"120"}}
	})
	decide(t, s.st, t0, 100, pcl.ReadinessReady, true, "tier0")
	p := s.pusher(t, PusherOptions{})
	next, err := p.Tick(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if next.Sub(s.clk.Now()) < 120*time.Second {
		t.Errorf("next attempt in %s, want at least the receiver's Retry-After of 120s", next.Sub(s.clk.Now()))
	}
	if es := s.pending(t); len(es) != 1 || es[0].Dead || es[0].Attempts != 1 {
		t.Errorf("after a 429: %+v, want one retryable failure", es)
	}
}

func TestPushBadPayloadIsDeadLetter(t *testing.T) {
	t.Parallel()
	s := newPushSetup(t)
	ctx := context.Background()
	d := pcl.Decision{Run: 100, State: pcl.ReadinessReady, Releasable: true, Version: 1, Decided: t0}
	_, err := s.st.SaveDecision(ctx, store.DecisionWrite{Decision: d, State: pcl.RunState{Run: 100, Decision: d},
		Outbox: []store.OutboxEntry{{Target: "tier0", Run: 100, Version: 1, Payload: []byte(`{"run": 999, "version": 1}`), Created: t0, NextAttempt: t0}}})
	if err != nil {
		t.Fatal(err)
	}
	p := s.pusher(t, PusherOptions{})
	if _, err := p.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if requests, _ := s.rcv.snapshot(); len(requests) != 0 {
		t.Errorf("a payload for another run was sent: %v", requests)
	}
	all, _ := s.st.Outbox(ctx, "tier0", 0)
	if len(all) != 1 || !all[0].Dead || !strings.Contains(all[0].LastError, "run 999") {
		t.Errorf("entry %+v, want dead naming the mismatch", all)
	}
}

// chanTarget hands every delivery to the test.
type chanTarget struct{ got chan string }

func (c chanTarget) Name() string { return "tier0" }
func (c chanTarget) Deliver(_ context.Context, d Delivery) error {
	c.got <- d.Key
	return nil
}

func TestPusherRunWakesAndStops(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	st := openStore(t, clk)
	tg := chanTarget{got: make(chan string, 10)}
	p, err := NewPusher(PusherOptions{Outbox: st, Target: tg, Clock: clk, Idle: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	decide(t, st, t0, 100, pcl.ReadinessReady, true, "tier0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	if k := <-tg.got; k != "100:1" {
		t.Fatalf("first delivery %s", k)
	}
	// The clock stands still and the loop waits an hour when idle: only Wake can bring 101 out now.
	decide(t, st, t0, 101, pcl.ReadinessReady, true, "tier0")
	p.Wake()
	if k := <-tg.got; k != "101:1" {
		t.Fatalf("after Wake: %s", k)
	}
	// Without Wake, the idle timer does it.
	decide(t, st, t0, 102, pcl.ReadinessReady, true, "tier0")
	for clk.Timers() == 0 {
		time.Sleep(time.Millisecond) // wait for the loop to park on its timer; not a timing assumption
	}
	clk.Advance(time.Hour)
	if k := <-tg.got; k != "102:1" {
		t.Fatalf("after the idle timer: %s", k)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v on cancel, want nil", err)
	}
}

func TestNewPusherRefuses(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	tg := chanTarget{}
	for _, o := range []PusherOptions{
		{Target: tg, Clock: clk},
		{Outbox: &crashingOutbox{}, Clock: clk},
		{Outbox: &crashingOutbox{}, Target: tg},
		{Outbox: &crashingOutbox{}, Target: tg, Clock: clk, BaseBackoff: time.Hour, MaxBackoff: time.Minute},
	} {
		if _, err := NewPusher(o); err == nil {
			t.Errorf("NewPusher(%+v) accepted", o)
		}
	}
	if k := IdempotencyKey(386509, 3); k != "386509:3" {
		t.Errorf("IdempotencyKey = %q", k)
	}
}

// TestPushNeverGivesUpAWithdrawal: once a run was delivered ready, a later version that takes readiness
// back is never dead-lettered, even on a permanent refusal: skipping it would leave the receiver saying
// ready. It holds the queue and goes through once the receiver takes it.
func TestPushNeverGivesUpAWithdrawal(t *testing.T) {
	t.Parallel()
	s := newPushSetup(t)
	var refuse atomic.Bool
	refuse.Store(true)
	s.rcv.setRespond(func(key string) (int, http.Header) {
		if key == "100:2" && refuse.Load() {
			return http.StatusUnprocessableEntity, nil
		}
		return http.StatusOK, nil
	})
	var dead []store.OutboxEntry
	p := s.pusher(t, PusherOptions{MaxAttempts: 3, OnDeadLetter: func(e store.OutboxEntry, err error) { dead = append(dead, e) }})
	decide(t, s.st, t0, 100, pcl.ReadinessReady, true, "tier0")
	if _, err := p.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	decide(t, s.st, s.clk.Now(), 100, pcl.ReadinessWaiting, false, "tier0") // a re-harvest: not ready any more
	decide(t, s.st, s.clk.Now(), 101, pcl.ReadinessReady, true, "tier0")
	for range 12 {
		if _, err := p.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		s.clk.Advance(time.Hour)
	}
	if len(dead) != 0 {
		t.Fatalf("a withdrawal was given up: %+v", dead)
	}
	_, accepted := s.rcv.snapshot()
	if slices.Contains(accepted, "101:1") {
		t.Errorf("run 101 overtook the withdrawal of run 100: %v", accepted)
	}
	refuse.Store(false)
	for range 3 {
		s.clk.Advance(time.Hour)
		if _, err := p.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if _, accepted = s.rcv.snapshot(); !slices.Equal(accepted, []string{"100:1", "100:2", "101:1"}) {
		t.Errorf("accepted %v, want 100:1, the withdrawal 100:2, then 101:1", accepted)
	}
}

// TestPushGivesUpARefusalThatWithdrawsNothing: a later version that is not releasable, after one that was
// not releasable either (a new reason for waiting), takes back no "ready". Refused for good, it is a dead
// letter like any other, audited, and the queue goes on; only a withdrawal holds it.
func TestPushGivesUpARefusalThatWithdrawsNothing(t *testing.T) {
	t.Parallel()
	s := newPushSetup(t)
	s.rcv.setRespond(func(key string) (int, http.Header) {
		if key == "100:2" {
			return http.StatusUnprocessableEntity, nil
		}
		return http.StatusOK, nil
	})
	var dead []store.OutboxEntry
	p := s.pusher(t, PusherOptions{MaxAttempts: 3, OnDeadLetter: func(e store.OutboxEntry, err error) { dead = append(dead, e) }})
	decide(t, s.st, t0, 100, pcl.ReadinessWaiting, false, "tier0")
	if _, err := p.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	decide(t, s.st, s.clk.Now(), 100, pcl.ReadinessBlocked, false, "tier0") // waiting → blocked: still not releasable
	decide(t, s.st, s.clk.Now(), 101, pcl.ReadinessReady, true, "tier0")
	for range 3 {
		if _, err := p.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		s.clk.Advance(time.Hour)
	}
	requests, accepted := s.rcv.snapshot()
	if n := count(requests, "100:2"); n != 1 {
		t.Errorf("the refused version was tried %d times, want once", n)
	}
	if !slices.Equal(accepted, []string{"100:1", "101:1"}) {
		t.Errorf("accepted %v, want 100:1 then 101:1, not held behind the refused 100:2", accepted)
	}
	if len(dead) != 1 || dead[0].Run != 100 || dead[0].Version != 2 {
		t.Errorf("dead letters %+v, want run 100 v2", dead)
	}
	audit, err := s.st.Audit(context.Background(), store.AuditQuery{Run: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) == 0 || audit[0].Action != "dead-letter" || !strings.Contains(audit[0].Detail, "version 2") {
		t.Errorf("newest audit entry of run 100: %+v, want the dead letter of version 2", audit)
	}
}

// TestPushNeverGivesUpAWithdrawalAfterExhaustedRetries: the same holds when a withdrawal fails for long
// enough to run out of attempts, and after a dead letter of another version of the run before it.
func TestPushNeverGivesUpAWithdrawalAfterExhaustedRetries(t *testing.T) {
	t.Parallel()
	s := newPushSetup(t)
	var down atomic.Bool
	s.rcv.setRespond(func(key string) (int, http.Header) {
		switch {
		case key == "100:2":
			return http.StatusUnprocessableEntity, nil // a ready version, refused for good
		case key == "100:3" && down.Load():
			return http.StatusBadGateway, nil
		}
		return http.StatusOK, nil
	})
	var dead []store.OutboxEntry
	p := s.pusher(t, PusherOptions{MaxAttempts: 2, OnDeadLetter: func(e store.OutboxEntry, err error) { dead = append(dead, e) }})
	decide(t, s.st, t0, 100, pcl.ReadinessWaiting, false, "tier0")
	decide(t, s.st, t0, 100, pcl.ReadinessReady, true, "tier0")
	decide(t, s.st, t0, 100, pcl.ReadinessWaiting, false, "tier0") // takes the ready v2 back
	down.Store(true)
	for range 10 {
		if _, err := p.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		s.clk.Advance(time.Hour)
	}
	if len(dead) != 1 || dead[0].Version != 2 {
		t.Fatalf("dead letters %+v, want only the refused ready v2", dead)
	}
	down.Store(false)
	s.clk.Advance(time.Hour)
	if _, err := p.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, accepted := s.rcv.snapshot(); !slices.Equal(accepted, []string{"100:1", "100:3"}) {
		t.Errorf("accepted %v, want 100:1 and the withdrawal 100:3", accepted)
	}
}

// TestPushGate: a pusher whose gate refuses (a replica that no longer leads) sends nothing and changes
// no entry; once the gate lets it, it delivers everything as before.
func TestPushGate(t *testing.T) {
	t.Parallel()
	s := newPushSetup(t)
	decide(t, s.st, s.clk.Now(), 100, pcl.ReadinessReady, true, "tier0")
	decide(t, s.st, s.clk.Now(), 101, pcl.ReadinessReady, true, "tier0")
	var leads atomic.Bool
	errDeposed := errors.New("this replica does not lead")
	p := s.pusher(t, PusherOptions{Gate: func(context.Context) error {
		if !leads.Load() {
			return errDeposed
		}
		return nil
	}})
	if _, err := p.Tick(context.Background()); !errors.Is(err, errDeposed) {
		t.Fatalf("tick behind a closed gate: %v, want the gate's error", err)
	}
	if requests, _ := s.rcv.snapshot(); len(requests) != 0 {
		t.Fatalf("sent %v behind a closed gate", requests)
	}
	left := s.pending(t)
	if len(left) != 2 || left[0].Attempts != 0 || left[1].Attempts != 0 {
		t.Fatalf("entries after a gated pass: %+v, want both pending with no attempt counted", left)
	}
	leads.Store(true)
	if _, err := p.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, accepted := s.rcv.snapshot(); !slices.Equal(accepted, []string{"100:1", "101:1"}) {
		t.Errorf("after the gate opened the receiver has %v", accepted)
	}
}

// TestPushOnDeliveredIsToldEachDelivery: OnDelivered hears of each recorded delivery once, with the
// entry (its creation time, for the latency metric) and the time the delivery was recorded, and never
// of a refused one.
func TestPushOnDeliveredIsToldEachDelivery(t *testing.T) {
	t.Parallel()
	s := newPushSetup(t)
	s.refusingRun100(t)
	type told struct {
		key string
		lat time.Duration
	}
	var got []told
	p := s.pusher(t, PusherOptions{OnDelivered: func(e store.OutboxEntry, at time.Time) {
		got = append(got, told{fmt.Sprintf("%d:%d", e.Run, e.Version), at.Sub(e.Created)})
	}})
	s.clk.Advance(2 * time.Minute)
	if _, err := p.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].key != "101:1" || got[0].lat != 2*time.Minute {
		t.Errorf("OnDelivered heard %+v, want 101:1 once, 2 min after its entry", got)
	}
}

// refusingRun100 has the receiver refuse run 100's first version for good (422) and accept the rest,
// and decides run 100 waiting and run 101 ready for the tier0 target.
func (s *pushSetup) refusingRun100(t *testing.T) {
	t.Helper()
	s.rcv.setRespond(func(key string) (int, http.Header) {
		if key == "100:1" {
			return http.StatusUnprocessableEntity, nil
		}
		return http.StatusOK, nil
	})
	decide(t, s.st, t0, 100, pcl.ReadinessWaiting, false, "tier0")
	decide(t, s.st, t0, 101, pcl.ReadinessReady, true, "tier0")
}
