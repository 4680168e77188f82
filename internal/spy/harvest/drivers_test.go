package harvest

// The test binary registers the SQLite driver the code under test opens by name (internal/dbdriver);
// the program registers it in internal/app/drivers.go.
import _ "modernc.org/sqlite"
