// Package dbdriver names the database/sql drivers Spy Agency opens, and says clearly when a program did
// not register one.
//
// Libraries (the condition DB reader internal/conddbv2, the SQL push target in internal/steer) open their
// databases by these names and register no driver themselves. When a library registered one, every other
// library needing the same driver worked by accident: the condition DB reader spoke PostgreSQL only
// because the push target's package imported pgx. The binary registers both drivers once, in
// internal/app/drivers.go; a test registers what it uses, in its package's drivers_test.go.
package dbdriver

import (
	"database/sql"
	"fmt"
	"slices"

	"github.com/cms-pcl/spyagency/internal/apperr"
)

// The drivers, by the names they register.
const (
	SQLite   = "sqlite" // modernc.org/sqlite, for sqlite:PATH
	Postgres = "pgx"    // github.com/jackc/pgx/v5/stdlib, for postgres://...
)

// known says, for each driver, the engine it speaks and the package whose blank import registers it.
var known = map[string]struct{ engine, pkg string }{
	SQLite:   {"SQLite", "modernc.org/sqlite"},
	Postgres: {"PostgreSQL", "github.com/jackc/pgx/v5/stdlib"},
}

// Check says whether the driver called name is registered, with an error that names the import which
// would register it.
func Check(name string) error {
	if slices.Contains(sql.Drivers(), name) {
		return nil
	}
	if k, ok := known[name]; ok {
		return apperr.Errorf(apperr.Internal, "this program registers no %s driver (%q; a blank import of %s does)", k.engine, name, k.pkg)
	}
	return apperr.Errorf(apperr.Internal, "this program registers no database driver %q", name)
}

// Open is sql.Open after Check: the error of a missing driver says what to import instead of sql's
// "unknown driver (forgotten import?)".
func Open(name, source string) (*sql.DB, error) {
	if err := Check(name); err != nil {
		return nil, err
	}
	db, err := sql.Open(name, source)
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", name, err)
	}
	return db, nil
}
