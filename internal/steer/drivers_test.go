package steer

// The test binary registers the drivers the SQL push target opens by name (internal/dbdriver); the
// program registers them in internal/app/drivers.go.
import (
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)
