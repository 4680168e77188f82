package conddbv2

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cms-pcl/spyagency/internal/dbdriver"
	"github.com/cms-pcl/spyagency/internal/pcl"
)

// schema is the CondDB v2 schema exactly as CMSSW writes it into SQLite files (read from the
// sqlite_master of a CMSSW-written file): the declared types ULONGLONG and TIMESTAMP matter, because
// drivers decide from them how to hand values back.
var schema = []string{
	`CREATE TABLE "TAG" ( "NAME" TEXT ,"TIME_TYPE" TEXT  NOT NULL,"OBJECT_TYPE" TEXT  NOT NULL,"SYNCHRONIZATION" TEXT  NOT NULL,"END_OF_VALIDITY" ULONGLONG  NOT NULL,"DESCRIPTION" TEXT  NOT NULL,"LAST_VALIDATED_TIME" ULONGLONG  NOT NULL,"INSERTION_TIME" TIMESTAMP  NOT NULL,"MODIFICATION_TIME" TIMESTAMP  NOT NULL, PRIMARY KEY("NAME") )`,
	`CREATE TABLE coral_sqlite_fk(id TEXT NOT NULL, name TEXT, tablename TEXT NOT NULL)`,
	`CREATE TABLE "PAYLOAD" ( "HASH" TEXT ,"OBJECT_TYPE" TEXT  NOT NULL,"DATA" BLOB  NOT NULL,"STREAMER_INFO" BLOB  NOT NULL,"VERSION" TEXT  NOT NULL,"INSERTION_TIME" TIMESTAMP  NOT NULL, PRIMARY KEY("HASH") )`,
	`CREATE TABLE "IOV" ( "TAG_NAME" TEXT  NOT NULL,"SINCE" ULONGLONG  NOT NULL,"PAYLOAD_HASH" TEXT  NOT NULL,"INSERTION_TIME" TIMESTAMP  NOT NULL, PRIMARY KEY("TAG_NAME","SINCE","INSERTION_TIME"), FOREIGN KEY("TAG_NAME") REFERENCES TAG("NAME"), FOREIGN KEY("PAYLOAD_HASH") REFERENCES PAYLOAD("HASH") )`,
	`CREATE TABLE "TAG_LOG" ( "TAG_NAME" TEXT  NOT NULL,"EVENT_TIME" TIMESTAMP  NOT NULL,"USER_NAME" TEXT  NOT NULL,"HOST_NAME" TEXT  NOT NULL,"COMMAND" TEXT  NOT NULL,"ACTION" TEXT  NOT NULL,"USER_TEXT" TEXT  NOT NULL, PRIMARY KEY("TAG_NAME","EVENT_TIME","ACTION"), FOREIGN KEY("TAG_NAME") REFERENCES TAG("NAME") )`,
	`CREATE TABLE "GLOBAL_TAG" ( "NAME" TEXT ,"VALIDITY" ULONGLONG  NOT NULL,"DESCRIPTION" TEXT  NOT NULL,"RELEASE" TEXT  NOT NULL,"SNAPSHOT_TIME" TIMESTAMP  NOT NULL,"INSERTION_TIME" TIMESTAMP  NOT NULL, PRIMARY KEY("NAME") )`,
	`CREATE TABLE "GLOBAL_TAG_MAP" ( "GLOBAL_TAG_NAME" TEXT  NOT NULL,"RECORD" TEXT  NOT NULL,"LABEL" TEXT  NOT NULL,"TAG_NAME" TEXT  NOT NULL, PRIMARY KEY("GLOBAL_TAG_NAME","RECORD","LABEL") )`,
}

// Writer appends to a CondDB v2 SQLite file. It is for the simulator and tests; the agency only reads.
type Writer struct {
	sql  *sql.DB
	path string
}

// Payload is a PAYLOAD row to insert.
type Payload struct {
	Hash         string // SHA-1, 40 hex digits
	ObjectType   string
	Data         []byte
	StreamerInfo []byte
	Version      string
	Inserted     time.Time
}

// Create makes a new, empty CondDB v2 SQLite file at path and opens it for writing. The file appears
// whole or not at all: it is built under a temporary name and renamed. An existing file is an error.
func Create(ctx context.Context, path string) (*Writer, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("creating condition DB %s: file exists", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".conddb-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("creating condition DB %s: %w", path, err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	if err := createSchema(ctx, tmpName); err != nil {
		os.Remove(tmpName)
		return nil, fmt.Errorf("creating condition DB %s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		os.Remove(tmpName)
		return nil, fmt.Errorf("creating condition DB %s: %w", path, err)
	}
	return OpenWriter(ctx, path)
}

func createSchema(ctx context.Context, path string) error {
	db, err := dbdriver.Open(dbdriver.SQLite, "file:"+escapeURIPath(path)+"?mode=rw")
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, stmt := range schema {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%.40s...: %w", stmt, err)
		}
	}
	return tx.Commit()
}

// OpenWriter opens an existing CondDB v2 SQLite file for appending.
func OpenWriter(ctx context.Context, path string) (*Writer, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("condition DB %s: %w", path, err)
	}
	db, err := dbdriver.Open(dbdriver.SQLite, "file:"+escapeURIPath(path)+"?mode=rw&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, fmt.Errorf("condition DB %s: %w", path, err)
	}
	// One connection: SQLite serialises writers anyway, and this keeps busy errors out of our own way.
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("condition DB %s: %w", path, err)
	}
	return &Writer{sql: db, path: path}, nil
}

// Close closes the file.
func (w *Writer) Close() error { return w.sql.Close() }

// InsertTag adds a TAG row. Zero times become now; a zero EndOfValidity becomes infinity.
func (w *Writer) InsertTag(ctx context.Context, t TagInfo) error {
	if t.Name == "" {
		return fmt.Errorf("condition DB %s: tag has no name", w.path)
	}
	if _, err := pcl.ParseTimeType(string(t.TimeType)); err != nil {
		return fmt.Errorf("condition DB %s: tag %s: %w", w.path, t.Name, err)
	}
	now := time.Now()
	if t.Inserted.IsZero() {
		t.Inserted = now
	}
	if t.Modified.IsZero() {
		t.Modified = t.Inserted
	}
	if t.EndOfValidity == 0 {
		t.EndOfValidity = pcl.Infinity
	}
	_, err := w.sql.ExecContext(ctx, `INSERT INTO "TAG" ("NAME", "TIME_TYPE", "OBJECT_TYPE", "SYNCHRONIZATION",
		"END_OF_VALIDITY", "DESCRIPTION", "LAST_VALIDATED_TIME", "INSERTION_TIME", "MODIFICATION_TIME")
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.Name, string(t.TimeType), t.ObjectType, t.Synchronization, int64(t.EndOfValidity), t.Description,
		int64(t.LastValidated), FormatTime(t.Inserted), FormatTime(t.Modified))
	if err != nil {
		return fmt.Errorf("condition DB %s: inserting tag %s: %w", w.path, t.Name, err)
	}
	return nil
}

// InsertPayload adds a PAYLOAD row; a payload already present is left as it is (payloads are
// content-addressed, so the same hash is the same payload).
func (w *Writer) InsertPayload(ctx context.Context, p Payload) error {
	if len(p.Hash) != 40 {
		return fmt.Errorf("condition DB %s: payload hash %q is not 40 hex digits", w.path, p.Hash)
	}
	if p.Inserted.IsZero() {
		p.Inserted = time.Now()
	}
	if p.Data == nil {
		p.Data = []byte{}
	}
	if p.StreamerInfo == nil {
		p.StreamerInfo = []byte{}
	}
	_, err := w.sql.ExecContext(ctx, `INSERT INTO "PAYLOAD" ("HASH", "OBJECT_TYPE", "DATA", "STREAMER_INFO", "VERSION",
		"INSERTION_TIME") VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT ("HASH") DO NOTHING`,
		p.Hash, p.ObjectType, p.Data, p.StreamerInfo, p.Version, FormatTime(p.Inserted))
	if err != nil {
		return fmt.Errorf("condition DB %s: inserting payload %s: %w", w.path, p.Hash, err)
	}
	return nil
}

// AppendIOV adds an IOV row. The tag must exist; a zero Inserted becomes now. Times are stored with
// microseconds, as CMSSW does, so two rows of one since need distinct microseconds.
func (w *Writer) AppendIOV(ctx context.Context, iov IOV) error {
	if iov.Inserted.IsZero() {
		iov.Inserted = time.Now()
	}
	var n int
	if err := w.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM "TAG" WHERE "NAME" = ?`, iov.Tag).Scan(&n); err != nil {
		return fmt.Errorf("condition DB %s: appending IOV to %s: %w", w.path, iov.Tag, err)
	}
	if n == 0 {
		return fmt.Errorf("condition DB %s: appending IOV to %s: no such tag", w.path, iov.Tag)
	}
	_, err := w.sql.ExecContext(ctx, `INSERT INTO "IOV" ("TAG_NAME", "SINCE", "PAYLOAD_HASH", "INSERTION_TIME")
		VALUES (?, ?, ?, ?)`, iov.Tag, int64(iov.Since), iov.Payload, FormatTime(iov.Inserted))
	if err != nil {
		return fmt.Errorf("condition DB %s: appending IOV %d to %s: %w", w.path, iov.Since, iov.Tag, err)
	}
	return nil
}
