package postgres

import (
	"context"
	"testing"

	"github.com/cms-pcl/spyagency/internal/pgtest"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/storetest"
)

// openSchema opens a fresh store in a schema of the test's own and closes it at the end of the test.
func openSchema(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), pgtest.Schema(t), opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openSchema(t, Options{}) })
	// RunReopen's dir stands for the place the store is kept: here, a schema made for that directory.
	schemas := map[string]string{}
	storetest.RunReopen(t, func(t *testing.T, dir string) store.Store {
		dsn, ok := schemas[dir]
		if !ok {
			dsn = pgtest.Schema(t)
			schemas[dir] = dsn
		}
		s, err := Open(context.Background(), dsn, Options{})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
