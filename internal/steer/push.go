package steer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// Outbox is what a Pusher needs from the store.
type Outbox interface {
	PendingOutbox(ctx context.Context, target string, now time.Time, limit int) ([]store.OutboxEntry, error)
	MarkDelivered(ctx context.Context, id int64, at time.Time) error
	MarkFailed(ctx context.Context, id int64, at, next time.Time, errText string, dead bool) error
	AppendAudit(ctx context.Context, e store.AuditEntry) error
	// Decisions returns a run's decisions, oldest first: whether a refused version takes back an
	// earlier releasable one depends on the version before it.
	Decisions(ctx context.Context, run uint32) ([]pcl.Decision, error)
}

// Delivery is one decision to deliver to one target.
type Delivery struct {
	// Key is the idempotency key "<run>:<version>": the same for every attempt and every redelivery.
	Key      string
	Decision pcl.Decision
}

// IdempotencyKey is the key a receiver de-duplicates deliveries by.
func IdempotencyKey(run uint32, version int64) string {
	return strconv.FormatUint(uint64(run), 10) + ":" + strconv.FormatInt(version, 10)
}

// Target delivers decisions to one receiver. Deliver returns nil once the receiver has the decision, an
// error made by Permanent when trying again cannot help (the receiver refused it), and any other error
// when a later attempt may succeed.
type Target interface {
	Name() string
	Deliver(ctx context.Context, d Delivery) error
}

// DeliveryError tells the Pusher how to treat a failed delivery.
type DeliveryError struct {
	Err       error
	Permanent bool
	// RetryAfter is the receiver's own hint (HTTP Retry-After); 0 for none.
	RetryAfter time.Duration
}

func (e *DeliveryError) Error() string { return e.Err.Error() }
func (e *DeliveryError) Unwrap() error { return e.Err }

// Permanent marks err as one that no retry will cure.
func Permanent(err error) error { return &DeliveryError{Err: err, Permanent: true} }

func isPermanent(err error) bool {
	var de *DeliveryError
	return errors.As(err, &de) && de.Permanent
}

func retryAfter(err error) time.Duration {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de.RetryAfter
	}
	return 0
}

// PusherOptions configures a Pusher. Outbox, Target and Clock are required.
type PusherOptions struct {
	Outbox Outbox
	Target Target
	Clock  clock.Clock
	Logger *slog.Logger // default: discard
	// Seed seeds the backoff jitter, so that a test (or a replay) sees the same schedule.
	Seed uint64
	// Batch is how many outbox entries one pass reads. Default 100.
	Batch int
	// Idle is how long the loop waits when nothing is due, unless woken. Default 5 s.
	Idle time.Duration
	// MaxAttempts: a delivery that failed this many times (retryable failures) becomes a dead letter.
	// Default 100, which with the default backoff rides out about 16 hours of a receiver being down.
	MaxAttempts int
	// BaseBackoff is the wait after the first failure; it doubles with each failure up to MaxBackoff, and
	// the wait is drawn between half of it and all of it (jitter, so that several Spy Agency targets or
	// replicas do not retry in lockstep). Defaults 1 s and 10 min.
	BaseBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one delivery attempt (wall time). Default 30 s.
	AttemptTimeout time.Duration
	// OnDeadLetter, if set, is called after an entry was given up and audited: the hook for the alert.
	OnDeadLetter func(e store.OutboxEntry, err error)
	// OnDelivered, if set, is called after a delivery was recorded, with the time it was recorded at
	// (the clock's): the hook for the delivery latency metric.
	OnDelivered func(e store.OutboxEntry, at time.Time)
	// Gate, if set, is asked right before each delivery attempt; an error ends the pass without the
	// attempt (the entry stays as it is). A replica gates its pushes on still holding the leader
	// lease: the store fences its writes, and this keeps a deposed leader from sending what another
	// replica now sends.
	Gate func(ctx context.Context) error
}

// Pusher drains one target's outbox.
//
// Order: entries go out in run order, then version order, and the pass stops at the first entry it cannot
// deliver yet (head-of-line blocking). So no later run, and no later version of the same run, overtakes an
// earlier one that is waiting for a retry. Every version is delivered, superseded ones included: the
// receiver keeps the newest version it has seen, so delivering v1 after v2 could never happen here, and
// delivering every version keeps the receiver's history the same as ours. Only a dead letter is skipped:
// it is audited, reported through OnDeadLetter, and the entries behind it go on.
type Pusher struct {
	o    PusherOptions
	log  *slog.Logger
	wake chan struct{}

	mu  sync.Mutex // one pass at a time; guards rng
	rng *rand.Rand
}

// NewPusher checks the options and fills in the defaults.
func NewPusher(o PusherOptions) (*Pusher, error) {
	switch {
	case o.Outbox == nil:
		return nil, errors.New("steer: pusher needs an outbox")
	case o.Target == nil:
		return nil, errors.New("steer: pusher needs a target")
	case o.Clock == nil:
		return nil, errors.New("steer: pusher needs a clock")
	case o.Target.Name() == "":
		return nil, errors.New("steer: pusher target has no name")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	setDefault(&o.Batch, 100)
	setDefault(&o.MaxAttempts, 100)
	setDefault(&o.Idle, 5*time.Second)
	setDefault(&o.BaseBackoff, time.Second)
	setDefault(&o.MaxBackoff, 10*time.Minute)
	setDefault(&o.AttemptTimeout, 30*time.Second)
	if o.MaxBackoff < o.BaseBackoff {
		return nil, fmt.Errorf("steer: pusher %s: max backoff %s is below base backoff %s", o.Target.Name(), o.MaxBackoff, o.BaseBackoff)
	}
	return &Pusher{
		o:    o,
		log:  o.Logger.With("target", o.Target.Name()),
		wake: make(chan struct{}, 1),
		rng:  rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)),
	}, nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Wake makes a waiting Run loop look at the outbox now (after a new decision) instead of at its next
// timer. It never blocks.
func (p *Pusher) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run drains the outbox until ctx ends. A store error is logged and retried after Idle: the outbox keeps
// everything, so nothing is lost by waiting.
func (p *Pusher) Run(ctx context.Context) error {
	for {
		next, err := p.Tick(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			p.log.Error("steer: push pass failed", "err", err)
			next = p.o.Clock.Now().Add(p.o.Idle)
		}
		t := p.o.Clock.NewTimer(next.Sub(p.o.Clock.Now()))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-p.wake:
			t.Stop()
		case <-t.C():
		}
	}
}

// lookAhead is how far beyond now a pass reads the outbox. PendingOutbox leaves out entries that are not
// due yet, but an entry waiting for its retry must still hold back everything behind it, so the pass reads
// them all and stops at the first one not due.
const lookAhead = 50 * 365 * 24 * time.Hour

// Tick makes one pass over the outbox and returns when the next pass is worth making.
func (p *Pusher) Tick(ctx context.Context) (next time.Time, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.o.Clock.Now()
	entries, err := p.o.Outbox.PendingOutbox(ctx, p.o.Target.Name(), now.Add(lookAhead), p.o.Batch)
	if err != nil {
		return time.Time{}, fmt.Errorf("steer: read outbox of %s: %w", p.o.Target.Name(), err)
	}
	for _, e := range entries {
		now = p.o.Clock.Now()
		if e.NextAttempt.After(now) {
			return e.NextAttempt, nil
		}
		retryAt, err := p.attempt(ctx, e)
		if err != nil {
			return time.Time{}, err
		}
		if !retryAt.IsZero() {
			return retryAt, nil
		}
	}
	now = p.o.Clock.Now()
	if len(entries) == p.o.Batch {
		return now, nil // a full batch: there may be more
	}
	return now.Add(p.o.Idle), nil
}

// attempt delivers one entry and records the outcome. It returns when to retry this entry (which blocks
// the rest of the pass), or zero when the pass may go on (delivered, or given up).
func (p *Pusher) attempt(ctx context.Context, e store.OutboxEntry) (retryAt time.Time, err error) {
	log := p.log.With("run", e.Run, "version", e.Version, "attempt", e.Attempts+1)
	d, derr := decodeEntry(e)
	decoded := derr == nil
	if p.o.Gate != nil {
		if err := p.o.Gate(ctx); err != nil {
			return time.Time{}, fmt.Errorf("steer: run %d v%d not sent to %s: %w", e.Run, e.Version, p.o.Target.Name(), err)
		}
	}
	if derr == nil {
		actx, cancel := context.WithTimeout(ctx, p.o.AttemptTimeout)
		derr = p.o.Target.Deliver(actx, d)
		cancel()
	}
	at := p.o.Clock.Now()
	if derr == nil {
		if err := p.o.Outbox.MarkDelivered(ctx, e.ID, at); err != nil {
			// Delivered but not recorded: the next pass delivers it again, which the idempotency key
			// makes harmless.
			return time.Time{}, fmt.Errorf("steer: record delivery of run %d v%d to %s: %w", e.Run, e.Version, p.o.Target.Name(), err)
		}
		log.Info("steer: delivered")
		if p.o.OnDelivered != nil {
			p.o.OnDelivered(e, at)
		}
		return time.Time{}, nil
	}
	if ctx.Err() != nil {
		// Shutting down: the failure says nothing about the receiver.
		return time.Time{}, ctx.Err()
	}
	if isPermanent(derr) || e.Attempts+1 >= p.o.MaxAttempts {
		withdrawal, err := p.withdraws(ctx, d, decoded)
		if err != nil {
			return time.Time{}, err
		}
		if withdrawal {
			// Giving this up would leave the receiver with the run's earlier version, which may say
			// ready: Tier-0 would release a run whose calibrations are no longer there. Keep it at the
			// head of the queue, retried at the longest backoff, and say so loudly.
			retryAt = at.Add(p.o.MaxBackoff)
			if err := p.o.Outbox.MarkFailed(ctx, e.ID, at, retryAt, derr.Error(), false); err != nil {
				return time.Time{}, fmt.Errorf("steer: record failed delivery of run %d v%d to %s: %w", e.Run, e.Version, p.o.Target.Name(), err)
			}
			log.Error("steer: a decision withdrawing readiness cannot be delivered; it is never given up and holds the queue",
				"err", derr, "retry_at", retryAt)
			return retryAt, nil
		}
		return time.Time{}, p.deadLetter(ctx, e, at, derr)
	}
	retryAt = at.Add(p.backoff(e.Attempts+1, retryAfter(derr)))
	if err := p.o.Outbox.MarkFailed(ctx, e.ID, at, retryAt, derr.Error(), false); err != nil {
		return time.Time{}, fmt.Errorf("steer: record failed delivery of run %d v%d to %s: %w", e.Run, e.Version, p.o.Target.Name(), err)
	}
	log.Warn("steer: delivery failed, will retry", "err", derr, "retry_at", retryAt)
	return retryAt, nil
}

// withdraws says whether a decision takes back an earlier releasable one: it is not releasable and the
// run's version before it was. Only such a version must never be given up. The first version of a run
// withdraws nothing (without it the receiver has no row, and Tier-0 waits for its fixed delay), and
// neither does a not-releasable version after another (a new reason for waiting): giving one of those up
// leaves the receiver with a not-releasable version too, so the queue may move on.
//
// The version before is enough, whatever happened to it: the queue goes in version order, and a
// not-releasable version after a releasable one is itself a withdrawal, never given up; so when version
// v-1 was not releasable, the receiver's newest version is not releasable either (or it has none).
func (p *Pusher) withdraws(ctx context.Context, d Delivery, decoded bool) (bool, error) {
	if !decoded || d.Decision.Releasable || d.Decision.Version <= 1 {
		return false, nil
	}
	ds, err := p.o.Outbox.Decisions(ctx, d.Decision.Run)
	if err != nil {
		return false, fmt.Errorf("steer: read decisions of run %d: %w", d.Decision.Run, err)
	}
	for _, prev := range ds {
		if prev.Version == d.Decision.Version-1 {
			return prev.Releasable, nil
		}
	}
	// The version before is not in the store: it cannot be shown that no "ready" is being taken back,
	// so keep trying rather than risk it.
	return true, nil
}

// deadLetter gives an entry up. The audit entry is written first: a crash in between then costs one more
// attempt and a second audit entry, never a dead letter nobody was told about.
func (p *Pusher) deadLetter(ctx context.Context, e store.OutboxEntry, at time.Time, cause error) error {
	why := "retries exhausted"
	if isPermanent(cause) {
		why = "refused by the receiver"
	}
	detail := fmt.Sprintf("push of run %d version %d to %s given up after %d attempt(s), %s: %v",
		e.Run, e.Version, p.o.Target.Name(), e.Attempts+1, why, cause)
	if err := p.o.Outbox.AppendAudit(ctx, store.AuditEntry{At: at, Run: e.Run, Actor: "agency", Action: "dead-letter", Detail: detail}); err != nil {
		return fmt.Errorf("steer: audit dead letter of run %d v%d to %s: %w", e.Run, e.Version, p.o.Target.Name(), err)
	}
	if err := p.o.Outbox.MarkFailed(ctx, e.ID, at, at, cause.Error(), true); err != nil {
		return fmt.Errorf("steer: record dead letter of run %d v%d to %s: %w", e.Run, e.Version, p.o.Target.Name(), err)
	}
	p.log.Error("steer: dead letter", "run", e.Run, "version", e.Version, "attempts", e.Attempts+1, "err", cause)
	if p.o.OnDeadLetter != nil {
		e.Attempts++
		e.Dead = true
		e.LastError = cause.Error()
		p.o.OnDeadLetter(e, cause)
	}
	return nil
}

// backoff is the wait after the n-th failure: BaseBackoff·2^(n-1) capped at MaxBackoff, drawn uniformly
// from its upper half, and never shorter than the receiver's Retry-After (itself capped at MaxBackoff).
func (p *Pusher) backoff(n int, hint time.Duration) time.Duration {
	d := p.o.BaseBackoff
	for i := 1; i < n && d < p.o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.o.MaxBackoff)
	half := d / 2
	d = half + time.Duration(p.rng.Int64N(int64(d-half)+1))
	return max(d, min(hint, p.o.MaxBackoff))
}

// decodeEntry reads the decision the agency stored as the entry's payload. A payload that does not decode,
// or names another run or version than its entry, will never deliver: it is a permanent error.
func decodeEntry(e store.OutboxEntry) (Delivery, error) {
	var d pcl.Decision
	if err := json.Unmarshal(e.Payload, &d); err != nil {
		return Delivery{}, Permanent(fmt.Errorf("outbox entry %d: payload is not a decision: %w", e.ID, err))
	}
	if d.Run != e.Run || d.Version != e.Version {
		return Delivery{}, Permanent(fmt.Errorf("outbox entry %d is for run %d v%d but its payload is run %d v%d",
			e.ID, e.Run, e.Version, d.Run, d.Version))
	}
	return Delivery{Key: IdempotencyKey(e.Run, e.Version), Decision: d}, nil
}
