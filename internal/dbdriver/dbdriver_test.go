package dbdriver

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
	"testing"

	"github.com/cms-pcl/spyagency/internal/apperr"
)

// This test binary registers no driver, as a library's would not: Check and Open must say which import
// is missing instead of database/sql's "forgotten import?".
func TestMissingDriverIsNamed(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		SQLite:   "no SQLite driver (\"sqlite\"; a blank import of modernc.org/sqlite does)",
		Postgres: "no PostgreSQL driver (\"pgx\"; a blank import of github.com/jackc/pgx/v5/stdlib does)",
		"mysql":  `no database driver "mysql"`,
	} {
		err := Check(name)
		if err == nil || !strings.Contains(err.Error(), want) || apperr.CodeOf(err) != apperr.Internal {
			t.Errorf("Check(%q) = %v, want it to say %q", name, err, want)
		}
		if db, err := Open(name, "x"); err == nil || !strings.Contains(err.Error(), want) {
			if db != nil {
				db.Close()
			}
			t.Errorf("Open(%q) = %v, want it to say %q", name, err, want)
		}
	}
}

type nopDriver struct{}

func (nopDriver) Open(string) (driver.Conn, error) { return nil, errors.New("not a database") }

func TestRegisteredDriverPasses(t *testing.T) {
	t.Parallel()
	sql.Register("dbdriver-test", nopDriver{})
	if err := Check("dbdriver-test"); err != nil {
		t.Errorf("Check of a registered driver: %v", err)
	}
	db, err := Open("dbdriver-test", "x")
	if err != nil {
		t.Fatalf("Open of a registered driver: %v", err)
	}
	db.Close()
}
