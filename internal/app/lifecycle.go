package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/web"
)

// lifecycle is what Start began and Close must end.
type lifecycle struct {
	mu          sync.Mutex // Start and Close one at a time
	started     bool
	closed      bool
	cancel      context.CancelFunc // ends every part Start runs
	parts       sync.WaitGroup
	unsubscribe func() // the pushers' wake-up on new decisions

	failOnce sync.Once
	failed   chan struct{} // closed when a part stopped on its own with an error
	errMu    sync.Mutex
	errs     []error // why parts stopped on their own
}

// Start runs the spies, the agency loop, the pushers and the web server on the configured address
// (server.addr), until Close or the end of ctx. It returns once the server listens, so Addr is known;
// when it cannot listen it returns the error and runs nothing. A second Start is an error, as is a
// Start after Close or of a stepped App (Step drives it).
func (a *App) Start(ctx context.Context) error { return a.start(ctx, a.o.Config.Server.Addr) }

// Run is Start on addr (the configured one if empty), a wait until ctx ends or a part fails, and
// Close: what `spyagency serve` does.
func (a *App) Run(ctx context.Context, addr string) error {
	if addr == "" {
		addr = a.o.Config.Server.Addr
	}
	if err := a.start(ctx, addr); err != nil {
		return errors.Join(err, a.Close())
	}
	select {
	case <-ctx.Done():
	case <-a.life.failed:
	}
	return a.Close()
}

func (a *App) start(ctx context.Context, addr string) error {
	a.life.mu.Lock()
	defer a.life.mu.Unlock()
	switch {
	case a.life.closed:
		return errors.New("app: Start after Close")
	case a.life.started:
		return errors.New("app: already started")
	case a.o.Stepped:
		return errors.New("app: a stepped app is driven by Step, not started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("app: listen on %s: %w", addr, err)
	}
	a.life.started = true
	a.life.failed = make(chan struct{})
	ctx, a.life.cancel = context.WithCancel(ctx)
	if a.lead != nil {
		// Replicas: the leader's parts run while this replica holds the lease (leader.go).
		a.life.parts.Go(func() { a.leadLoop(ctx) })
		if n, ok := a.lead.st.(runNotifier); ok {
			a.runLive(ctx, n)
		}
	} else {
		a.life.unsubscribe = a.runParts(ctx, &a.life.parts)
	}
	grace := a.o.Config.Server.ShutdownTimeout
	if grace <= 0 {
		grace = 10 * time.Second
	}
	timeouts := web.Timeouts{Read: a.o.Config.Server.ReadTimeout, Write: a.o.Config.Server.WriteTimeout}
	a.life.parts.Go(func() {
		if err := web.Serve(ctx, ln, a.Handler, grace, timeouts); err != nil {
			a.fail(fmt.Errorf("web: %w", err))
		}
	})
	a.mu.Lock()
	a.addr = ln.Addr()
	a.mu.Unlock()
	close(a.up)
	a.log.Info("serving", "addr", ln.Addr().String())
	return nil
}

// runParts starts the loops in parts: the agency, the alerts' evaluator, the pushers (woken by every
// new decision) and the spies. It returns the end of the pushers' subscription to new decisions, for
// once parts has been waited for.
func (a *App) runParts(ctx context.Context, parts *sync.WaitGroup) (unsubscribe func()) {
	parts.Go(func() {
		if err := a.Agency.Run(ctx); err != nil {
			a.fail(fmt.Errorf("agency: %w", err))
		}
	})
	parts.Go(func() {
		if err := a.Alerts.Run(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("alert evaluation stopped", "err", err)
		}
	})
	for _, p := range a.pushers {
		parts.Go(func() {
			if err := p.Run(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("pusher stopped", "err", err)
			}
		})
	}
	// A new decision is pushed at once rather than at the pushers' next idle tick, and looked at by the
	// alerts (a run blocked, released) at once rather than at their next interval.
	{
		var events <-chan pcl.RunEvent
		events, unsubscribe = a.Agency.Subscribe(64)
		parts.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case e, ok := <-events:
					if !ok {
						return
					}
					if e.DecisionChanged {
						a.metrics.events.Decided(e.State)
						for _, p := range a.pushers {
							p.Wake()
						}
						a.Alerts.Wake()
					}
				}
			}
		})
	}
	parts.Go(func() { a.retain(ctx) }) // retention.go
	for _, r := range a.spies.runners {
		parts.Go(func() {
			if err := r.Run(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("spy stopped", "spy", r.Name(), "err", err)
			}
		})
	}
	return unsubscribe
}

// fail records why a part stopped on its own, and tells Run to close the App.
func (a *App) fail(err error) {
	a.life.errMu.Lock()
	a.life.errs = append(a.life.errs, err)
	a.life.errMu.Unlock()
	a.life.failOnce.Do(func() { close(a.life.failed) })
}

// Close stops what Start runs (the server within its shutdown timeout) and closes everything New
// opened: the web's event streams, the spies' handles, the push targets' connections and the store.
// It may be called without Start, and more than once: later calls do nothing and return nil. Its
// error joins why parts stopped on their own and what failed to close.
func (a *App) Close() error {
	a.life.mu.Lock()
	defer a.life.mu.Unlock()
	if a.life.closed {
		return nil
	}
	a.life.closed = true
	if a.life.cancel != nil {
		a.life.cancel()
	}
	a.life.parts.Wait()
	if a.life.unsubscribe != nil {
		a.life.unsubscribe()
	}
	a.life.errMu.Lock()
	errs := a.life.errs
	a.life.errMu.Unlock()
	if a.Web != nil {
		a.Web.Close() // its header watch reads the store: before the store closes
	}
	errs = append(errs, a.spies.close()...)
	for _, closeTarget := range a.targets {
		errs = append(errs, closeTarget())
	}
	if a.Store != nil {
		errs = append(errs, a.Store.Close())
	}
	return errors.Join(errs...)
}
