package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/httpx"
	"github.com/cms-pcl/spyagency/internal/t0envelope"
)

// Tier0Mode says what releases PromptReco in the stub.
type Tier0Mode string

const (
	// Tier0Fixed is Tier-0 today: release defaultRecoTimeout after stop, lock defaultRecoLockTimeout
	// before, strictly in run order.
	Tier0Fixed Tier0Mode = "fixed"
	// Tier0Agency reads Spy Agency's first_unready_run on every feeder cycle and releases the runs
	// below it in order, locking first and releasing defaultRecoLockTimeout later. While the agency
	// cannot be reached it falls back to the fixed delay.
	Tier0Agency Tier0Mode = "agency"
)

// AgencyClient is what the stub asks Spy Agency.
type AgencyClient interface {
	// FirstUnreadyRun is N of GET /t0/v1/first_unready_run: every run below N may be released.
	FirstUnreadyRun(ctx context.Context) (uint32, error)
}

// HTTPAgency reads the pull API of a Spy Agency at BaseURL (e.g. http://127.0.0.1:8080).
type HTTPAgency struct {
	BaseURL string
	// Client sends the request; default one client shared by every HTTPAgency, so that a feeder cycle
	// reuses the last one's connection.
	Client *httpx.Client
	// Token, when set, is sent as a bearer token (the steer scope).
	Token string
}

// AgencyAt is an AgencyClient for an agency whose address is known only once it listens, or changes as
// it is restarted (the demo, the crash suite). Until Set, and after Set(""), the agency is unreachable,
// and the stub falls back to its fixed delay exactly as Tier-0 would.
type AgencyAt struct {
	mu     sync.Mutex
	base   string
	client *httpx.Client // nil: the shared default
}

// SetClient has the stub ask through c (an in-process transport to the agency's handler, say).
func (a *AgencyAt) SetClient(c *httpx.Client) {
	a.mu.Lock()
	a.client = c
	a.mu.Unlock()
}

// Set points the stub at the agency at base (e.g. http://127.0.0.1:8080); "" means none is up.
func (a *AgencyAt) Set(base string) {
	a.mu.Lock()
	a.base = base
	a.mu.Unlock()
}

// FirstUnreadyRun asks the agency last Set.
func (a *AgencyAt) FirstUnreadyRun(ctx context.Context) (uint32, error) {
	a.mu.Lock()
	base, client := a.base, a.client
	a.mu.Unlock()
	if base == "" {
		return 0, errors.New("agency: none listening")
	}
	return HTTPAgency{BaseURL: base, Client: client}.FirstUnreadyRun(ctx)
}

// agencyHTTP is the default client: a 5 s timeout and a 64 KiB body limit, as Tier-0's feeder would ask.
var agencyHTTP = sync.OnceValue(func() *httpx.Client { return AgencyClientVia(nil) })

// AgencyClientVia is the stub's client to the agency (a 5 s timeout, a 64 KiB body limit, as Tier-0's
// feeder would ask) sending through hc; nil: the default transport.
func AgencyClientVia(hc *http.Client) *httpx.Client {
	return httpx.New(httpx.Options{Timeout: 5 * time.Second, MaxBytes: 64 << 10, UserAgent: "spyagency-sim-tier0", HTTP: hc})
}

// FirstUnreadyRun asks GET <base>/t0/v1/first_unready_run and reads {"result": [N]}.
func (a HTTPAgency) FirstUnreadyRun(ctx context.Context) (uint32, error) {
	c := a.Client
	if c == nil {
		c = agencyHTTP()
	}
	req := httpx.Request{URL: strings.TrimRight(a.BaseURL, "/") + "/t0/v1/first_unready_run"}
	if a.Token != "" {
		req.Header = http.Header{"Authorization": {"Bearer " + a.Token}}
	}
	var body json.RawMessage
	meta, err := c.Send(ctx, req, &body)
	if err != nil {
		return 0, fmt.Errorf("agency: %w", err)
	}
	runs, err := t0envelope.Decode[uint32](body)
	if err != nil {
		return 0, fmt.Errorf("agency: GET %s: %w", meta.URL, err)
	}
	if len(runs) != 1 {
		return 0, fmt.Errorf("agency: GET %s: want one run in result, got %d", meta.URL, len(runs))
	}
	return runs[0], nil
}

// tier0 is the stub's bookkeeping: reco_locked and the releases.
type t0stub struct {
	mode     Tier0Mode
	agency   AgencyClient
	backstop bool // agency mode: the fixed delay stays OR-ed in (Config.Tier0Backstop)
	p        Params
	log      *slog.Logger
	order    []uint32        // runs Tier-0 knows, in order
	locked   map[uint32]bool // reco_locked.locked
	releases []Release
	agencyUp *bool // last poll's outcome, to log changes only

	lockNext, releaseNext int // indices into the world's runs
	fcsrCache             uint32
	fcsrValid             bool

	// The agency's latest answer, asked for outside the world's lock (see Sim.askAgency): a feeder
	// cycle acts on it. asked is false until the first answer, which counts as unreachable.
	answer    uint32
	answerErr error
	asked     bool
}

func newTier0(mode Tier0Mode, agency AgencyClient, p Params, log *slog.Logger) (*t0stub, error) {
	switch mode {
	case "":
		mode = Tier0Fixed
	case Tier0Fixed:
	case Tier0Agency:
		if agency == nil {
			return nil, errors.New("sim: tier0 mode agency needs an AgencyClient")
		}
	default:
		return nil, fmt.Errorf("sim: unknown tier0 mode %q (want fixed or agency)", mode)
	}
	return &t0stub{mode: mode, agency: agency, p: p, log: log, locked: map[uint32]bool{}}, nil
}

func (t *t0stub) addRun(n uint32) {
	t.order = append(t.order, n)
	t.locked[n] = false
	t.fcsrValid = false
}

// fcsr is Tier-0's SQL of cms-interfaces.md §2: the smallest run with locked = 0 above the largest
// locked run, else max(run)+1; 0 when Tier-0 knows no run.
func (t *t0stub) fcsr() uint32 {
	if !t.fcsrValid {
		t.fcsrCache, t.fcsrValid = t.computeFCSR(), true
	}
	return t.fcsrCache
}

func (t *t0stub) computeFCSR() uint32 {
	if len(t.order) == 0 {
		return 0
	}
	var maxLocked uint32
	for _, n := range t.order {
		if t.locked[n] && n > maxLocked {
			maxLocked = n
		}
	}
	for _, n := range t.order {
		if n > maxLocked && !t.locked[n] {
			return n
		}
	}
	return t.order[len(t.order)-1] + 1
}

// cycle locks and releases, both strictly in run order.
func (t *t0stub) cycle(w *world) {
	limit, useAgency := t.poll(w)
	fcsrBefore := t.fcsr()
	// Locks and releases go strictly in run order, so everything before lockNext is locked and
	// everything before releaseNext released.
	for ; t.lockNext < len(w.runs); t.lockNext++ {
		r := w.runs[t.lockNext]
		due := r.stopped && !w.now.Before(r.Stop.Add(t.p.RecoDelay-t.p.RecoLockDelay))
		eligible, agencySaid := due, false
		if useAgency {
			agencySaid = r.stopped && r.Number < limit
			eligible = agencySaid || (t.backstop && due)
		}
		if !eligible {
			break
		}
		t.locked[r.Number], t.fcsrValid = true, false
		r.Locked, r.byAgency = w.now, agencySaid
		w.record("tier0 lock run %d by-agency=%v", r.Number, useAgency)
	}
	if f := t.fcsr(); f != fcsrBefore {
		w.record("tier0 fcsr %d", f)
	}
	for ; t.releaseNext < len(w.runs); t.releaseNext++ {
		r := w.runs[t.releaseNext]
		if r.Locked.IsZero() || w.now.Before(r.Locked.Add(t.p.RecoLockDelay)) {
			break
		}
		r.Released, r.RecoDone = w.now, w.now.Add(t.p.RecoDuration)
		t.releases = append(t.releases, Release{Run: r.Number, Locked: r.Locked, Released: w.now,
			Datasets: append([]string(nil), r.datasets...), ByAgency: r.byAgency})
		w.record("tier0 release run %d datasets=%s", r.Number, strings.Join(r.datasets, ","))
	}
}

// setAnswer keeps what the agency answered last.
func (t *t0stub) setAnswer(n uint32, err error) {
	t.answer, t.answerErr, t.asked = n, err, true
}

// poll is the agency's latest answer, in agency mode; a failure (or no answer yet) means the fixed
// delay applies this cycle. The question itself is asked before the world advances, without its lock:
// the simulated services must keep answering the agency's spies while the agency answers Tier-0.
func (t *t0stub) poll(w *world) (uint32, bool) {
	if t.mode != Tier0Agency {
		return 0, false
	}
	n, err := t.answer, t.answerErr
	if !t.asked {
		err = errors.New("agency not asked yet")
	}
	up := err == nil
	if t.agencyUp == nil || *t.agencyUp != up {
		if up {
			t.log.Info("sim: tier0 stub follows the agency", "first_unready_run", n)
		} else {
			t.log.Warn("sim: tier0 stub cannot reach the agency; fixed delay applies", "err", err)
		}
		t.agencyUp = &up
	}
	return n, up
}
