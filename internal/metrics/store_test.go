package metrics

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/sqlite"
)

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), sqlite.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// snake is the op label of a store method: AppendObservations is append_observations.
func snake(name string) string {
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Every operation of the store interface, called through the instrumented store, is timed under its
// own op label: a method forwarded under another label, or not timed, fails here.
func TestStoreTimingsCoverEveryOperation(t *testing.T) {
	reg := prometheus.NewRegistry()
	tm, err := NewStoreTimings(reg)
	if err != nil {
		t.Fatal(err)
	}
	inst := reflect.ValueOf(tm.Instrument(openSQLite(t)))
	iface := reflect.TypeFor[store.Store]()
	ctxType := reflect.TypeFor[context.Context]()
	for i := range iface.NumMethod() {
		m := iface.Method(i)
		if m.Name == "Close" {
			continue
		}
		args := make([]reflect.Value, m.Type.NumIn())
		for j := range args {
			if in := m.Type.In(j); in == ctxType {
				args[j] = reflect.ValueOf(context.Background())
			} else {
				args[j] = reflect.Zero(in)
			}
		}
		op := snake(m.Name)
		before := testutil.CollectAndCount(tm.duration)
		_ = inst.MethodByName(m.Name).Call(args) // zero arguments: a result or an error, either is timed
		if got := testutil.CollectAndCount(tm.duration); got != before+1 {
			t.Errorf("%s: %d series after the call, want %d (a new op label)", m.Name, got, before+1)
		}
		if n := histCount(t, tm.duration, op); n != 1 {
			t.Errorf("%s: %d observations under op=%q, want 1", m.Name, n, op)
		}
	}
}

func hist(t *testing.T, h *prometheus.HistogramVec, op string) *dto.Histogram {
	t.Helper()
	o, err := h.GetMetricWithLabelValues(op)
	if err != nil {
		t.Fatal(err)
	}
	var m dto.Metric
	if err := o.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram()
}

func histCount(t *testing.T, h *prometheus.HistogramVec, op string) uint64 {
	return hist(t, h, op).GetSampleCount()
}

// failing is a store whose reads fail with the error it is given.
type failing struct {
	store.Store
	err error
}

func (f failing) RunState(context.Context, uint32) (pcl.RunState, error) {
	return pcl.RunState{}, f.err
}

func TestStoreTimingsCountErrorsByKindAndLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	tm, err := NewStoreTimings(reg)
	if err != nil {
		t.Fatal(err)
	}
	tm.since = func(time.Time) time.Duration { return 3 * time.Millisecond }
	st := openSQLite(t)
	for _, e := range []error{
		apperr.Errorf(apperr.NotFound, "run 1: not found"),
		fmt.Errorf("read: %w", context.Canceled),
		errors.New("disk I/O error"),
		apperr.Errorf(apperr.NotFound, "run 2: not found"),
		nil,
	} {
		_, _ = tm.Instrument(failing{st, e}).RunState(context.Background(), 1)
	}
	inst := tm.Instrument(st)
	if err := inst.SetSetting(context.Background(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	v, ok, err := inst.Setting(context.Background(), "k")
	if err != nil || !ok || v != "v" {
		t.Fatalf("Setting through the instrumented store: %q %v %v", v, ok, err)
	}
	want := `
# HELP spyagency_store_operation_errors_total Store operations that returned an error, by operation and kind (not_found, conflict, invalid, canceled, internal...).
# TYPE spyagency_store_operation_errors_total counter
spyagency_store_operation_errors_total{kind="canceled",op="run_state"} 1
spyagency_store_operation_errors_total{kind="internal",op="run_state"} 1
spyagency_store_operation_errors_total{kind="not_found",op="run_state"} 2
`
	if err := testutil.CollectAndCompare(tm.errors, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if n := histCount(t, tm.duration, "run_state"); n != 5 {
		t.Errorf("run_state timed %d times, want 5 (failed calls are timed too)", n)
	}
	// The fake elapsed time (3 ms) lands in the 2.5–5 ms bucket.
	h := hist(t, tm.duration, "setting")
	if h.GetSampleCount() != 1 || h.GetSampleSum() != 0.003 {
		t.Errorf("setting: count %d sum %g, want 1 and 0.003", h.GetSampleCount(), h.GetSampleSum())
	}
	for _, b := range h.GetBucket() {
		want := uint64(0)
		if b.GetUpperBound() >= 0.005 {
			want = 1
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("setting: bucket le=%g holds %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if u, ok := inst.(interface{ Unwrap() store.Store }); !ok || u.Unwrap() != st {
		t.Error("the instrumented store does not unwrap to the store")
	}
}

// BenchmarkStoreTimings: what timing adds to one store read (a setting on SQLite), beside the read.
func BenchmarkStoreTimings(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "s.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.SetSetting(context.Background(), "k", "v"); err != nil {
		b.Fatal(err)
	}
	tm, err := NewStoreTimings(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	for name, s := range map[string]store.Store{"raw": st, "timed": tm.Instrument(st)} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := s.Setting(context.Background(), "k"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
