package app

// The database/sql drivers of the whole program, registered here once. The libraries that open databases
// (internal/conddbv2, the SQL push target in internal/steer) register none and open by the names in
// internal/dbdriver, so a condition DB on PostgreSQL works because the program says so, not because the
// push target's package happened to import pgx.
import (
	_ "github.com/jackc/pgx/v5/stdlib" // dbdriver.Postgres: the condition DB, the SQL push target
	_ "modernc.org/sqlite"             // dbdriver.SQLite: the store, the condition DB, harvest files, the SQL push target
)
