package main

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
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
