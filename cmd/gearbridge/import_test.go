package main

import (
	"database/sql"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearbridge/gearbridge"
	"github.com/gearbridge/gearbridge/store"
)

func sqliteFile(t *testing.T, stmts string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "q.sqlite")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmts); err != nil {
		t.Fatal(err)
	}
	return path
}

// A table from before gearmand added when_to_run, a NULL payload (an empty
// one as SQLite may keep it) and a NULL epoch (rows from before gearmand
// added the column) are read as empty and "at once"; rows come in rowid
// order, which INSERT OR REPLACE moves to the end.
func TestReadGearmandSqlite_OldTablesAndNulls(t *testing.T) {
	path := sqliteFile(t, `CREATE TABLE q (unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB, PRIMARY KEY (unique_key, function_name));
		INSERT INTO q VALUES ('a', 'f', 2, NULL);
		INSERT INTO q VALUES ('b', 'f', 0, x'01');
		INSERT OR REPLACE INTO q VALUES ('a', 'f', 1, 'again');
		ALTER TABLE q ADD COLUMN when_to_run INTEGER;`)
	rows, err := readGearmandSqlite(path, "q")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].unique != "b" || rows[1].unique != "a" || string(rows[1].payload) != "again" ||
		rows[1].priority != 1 || rows[0].when != 0 || string(rows[0].payload) != "\x01" {
		t.Fatalf("%+v", rows)
	}
	if _, err := readGearmandSqlite(path, "gearman_queue"); err == nil || !strings.Contains(err.Error(), "no column unique_key") {
		t.Fatalf("a missing table: %v", err)
	}
}

func TestReadGearmandSqlite_RefusesBadRows(t *testing.T) {
	path := sqliteFile(t, `CREATE TABLE gearman_queue ( unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name));
		INSERT INTO gearman_queue VALUES ('u', 'f', 7, x'00', 0);`)
	if _, err := readGearmandSqlite(path, "gearman_queue"); err == nil || !strings.Contains(err.Error(), "priority 7") {
		t.Fatalf("priority 7: %v", err)
	}
}

// A row whose function and unique match a job already queued in the store
// is not added (a submit would have been attached to that job), and stays
// not added after that job has run.
func TestImportJobs_CoalescesWithQueuedJobs(t *testing.T) {
	db := filepath.Join(t.TempDir(), "gearbridge.db")
	st, err := store.Open(db, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	st.Add(&gearbridge.Job{ID: 1, Handle: "H:x:1", Function: "f", Unique: "same", Background: true, Priority: gearbridge.PriorityNormal}, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	rows := []gearmandRow{
		{unique: "same", function: "f", priority: gearbridge.PriorityHigh, payload: []byte("a")},
		{unique: "same", function: "g", priority: gearbridge.PriorityLow, payload: []byte("b")},
	}
	sum, err := importJobs(rows, db, "H:imp")
	if err != nil {
		t.Fatal(err)
	}
	if sum.added != 1 || sum.queued != 1 || sum.first != "H:imp:2" {
		t.Fatalf("first import: %+v", sum)
	}
	// The queued job runs and leaves; the row is still not imported.
	st, err = store.Open(db, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	st.Remove(1)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if sum, err = importJobs(rows, db, "H:imp"); err != nil || sum.added != 0 || sum.already != 2 {
		t.Fatalf("second import: %+v %v", sum, err)
	}
}
