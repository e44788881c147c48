package main

import (
	"cmp"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"

	_ "modernc.org/sqlite" // pure Go: the binary stays static

	"github.com/gearbridge/gearbridge"
	"github.com/gearbridge/gearbridge/server"
	"github.com/gearbridge/gearbridge/store"
)

const importUsage = `Usage: gearbridge import --gearmand-sqlite FILE [--db DB]

Loads the queued jobs of C gearmand's libsqlite3 queue (gearmand -q libsqlite3
--libsqlite3-db FILE) into a gearbridge store: function, unique, payload,
priority and epoch time, in gearmand's submit order, under the store's next
job handles. Stop gearmand first; the store must not be open in a running
gearbridge either. Running it again adds nothing: every imported row is
recorded in the store, and a row whose function and unique match a job
already queued in the store is not added a second time.
`

// importBatch is how many rows one store transaction takes: a crash loses
// at most the batch in flight, and running the import again finishes it.
const importBatch = 1000

func runImport(args []string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	sqlitePath := fs.String("gearmand-sqlite", "", "gearmand's libsqlite3 queue file (its --libsqlite3-db)")
	table := fs.String("gearmand-sqlite-table", "gearman_queue", "the queue's table (gearmand's --libsqlite3-table)")
	db := fs.String("db", "./gearbridge.db", "the gearbridge store to load the jobs into (created if missing)")
	prefix := fs.String("job-handle-prefix", "", `handle prefix of the imported jobs (default "H:<hostname>", as serve)`)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), importUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if *sqlitePath == "" || fs.NArg() != 0 {
		fs.Usage()
		return usageError{errors.New("import: want --gearmand-sqlite FILE")}
	}
	rows, err := readGearmandSqlite(*sqlitePath, *table)
	if err != nil {
		return err
	}
	sum, err := importJobs(rows, *db, server.HandlePrefix(*prefix))
	if err != nil {
		return err
	}
	sum.print(os.Stdout, *sqlitePath, *db)
	return nil
}

// gearmandRow is one row of gearmand's queue table. gearmand only stores
// background jobs there, and gives every job a unique (a UUID when the
// client sent none); the table's key is (unique_key, function_name).
type gearmandRow struct {
	unique, function string
	priority         gearbridge.Priority
	payload          []byte
	when             int64
}

// readGearmandSqlite reads every row of the queue table, in rowid order:
// the order gearmand's own replay reads them in (its SELECT has no ORDER
// BY), which is submit order, since INSERT OR REPLACE gives a re-added job
// a new rowid.
func readGearmandSqlite(path, table string) ([]gearmandRow, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("gearmand queue: %w", err)
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=ro"
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("gearmand queue %s: %w", path, err)
	}
	defer sdb.Close()
	quoted := `"` + strings.ReplaceAll(table, `"`, `""`) + `"`
	// A table from before gearmand 1.0 has no when_to_run (gearmand adds the
	// column when it opens it): such jobs run at once.
	cols := map[string]bool{}
	crows, err := sdb.Query("SELECT name FROM pragma_table_info(?)", table)
	if err != nil {
		return nil, fmt.Errorf("gearmand queue %s: %w", path, err)
	}
	for crows.Next() {
		var name string
		if err := crows.Scan(&name); err != nil {
			crows.Close()
			return nil, fmt.Errorf("gearmand queue %s: %w", path, err)
		}
		cols[name] = true
	}
	if err := crows.Err(); err != nil {
		return nil, fmt.Errorf("gearmand queue %s: %w", path, err)
	}
	crows.Close()
	for _, c := range []string{"unique_key", "function_name", "priority", "data"} {
		if !cols[c] {
			return nil, fmt.Errorf("gearmand queue %s: table %s has no column %s (is it gearmand's libsqlite3 queue? --gearmand-sqlite-table names another table)", path, quoted, c)
		}
	}
	when := "0"
	if cols["when_to_run"] {
		when = "when_to_run"
	}
	q, err := sdb.Query("SELECT unique_key, function_name, priority, data, " + when + " FROM " + quoted + " ORDER BY rowid")
	if err != nil {
		return nil, fmt.Errorf("gearmand queue %s: %w", path, err)
	}
	defer q.Close()
	var out []gearmandRow
	for n := 1; q.Next(); n++ {
		var unique, function, data []byte
		var prio, at sql.NullInt64
		if err := q.Scan(&unique, &function, &prio, &data, &at); err != nil {
			return nil, fmt.Errorf("gearmand queue %s: row %d: %w", path, n, err)
		}
		switch {
		case len(function) == 0:
			return nil, fmt.Errorf("gearmand queue %s: row %d (unique %q) has no function name", path, n, unique)
		case !prio.Valid || prio.Int64 < 0 || prio.Int64 >= gearbridge.NumPriorities:
			return nil, fmt.Errorf("gearmand queue %s: row %d (function %q, unique %q): priority %v is not 0 (high), 1 (normal) or 2 (low)", path, n, function, unique, prio.Int64)
		}
		out = append(out, gearmandRow{
			unique: string(unique), function: string(function), priority: gearbridge.Priority(prio.Int64),
			payload: data, when: at.Int64,
		})
	}
	if err := q.Err(); err != nil {
		return nil, fmt.Errorf("gearmand queue %s: %w", path, err)
	}
	return out, nil
}

// marker identifies a gearmand row among everything ever imported: all of
// its fields, so that a later row with the same function and unique but
// other contents (a new job after the first one finished) is a new job.
func (r gearmandRow) marker() []byte {
	h := sha256.New()
	for _, f := range [][]byte{[]byte(r.function), []byte(r.unique), r.payload} {
		h.Write(binary.AppendUvarint(nil, uint64(len(f))))
		h.Write(f)
	}
	h.Write([]byte{byte(r.priority)})
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(r.when)))
	return h.Sum([]byte("gearmand-sqlite\x00"))
}

type importSummary struct {
	rows, added, already, queued int
	byPriority                   [gearbridge.NumPriorities]int
	scheduled                    int
	first, last                  string
}

// importJobs writes rows into the store at dbPath as background jobs.
func importJobs(rows []gearmandRow, dbPath, prefix string) (importSummary, error) {
	sum := importSummary{rows: len(rows)}
	im, err := store.OpenImporter(dbPath, prefix, 0, slog.Default())
	if err != nil {
		if errors.Is(err, store.ErrInUse) {
			return sum, fmt.Errorf("%w; the import is offline: stop the server first", err)
		}
		return sum, err
	}
	defer im.Close()
	queued := map[string]bool{}
	err = im.Stored(func(j *gearbridge.Job) {
		if k := server.UniqueKey(j.Function, j.Unique, j.Payload); k != "" {
			queued[k] = true
		}
	})
	if err != nil {
		return sum, err
	}
	for len(rows) > 0 {
		n := min(len(rows), importBatch)
		batch := make([]store.ImportJob, n)
		for i, r := range rows[:n] {
			batch[i] = store.ImportJob{
				Job: gearbridge.Job{
					Function: r.function, Unique: r.unique, Payload: r.payload,
					Priority: r.priority, Background: true, Epoch: r.when,
				},
				Marker: r.marker(),
				// A submit with the same function and unique would be
				// attached to the queued job, not queued twice.
				MarkOnly: queued[server.UniqueKey(r.function, r.unique, r.payload)],
			}
		}
		res, err := im.Import(batch)
		if err != nil {
			return sum, fmt.Errorf("%w (%d of %d jobs imported; running the import again adds the rest)", err, sum.added, sum.rows)
		}
		for i, r := range res {
			switch r {
			case store.Added:
				j := &batch[i].Job
				sum.added++
				sum.byPriority[j.Priority]++
				if j.Epoch > 0 {
					sum.scheduled++
				}
				sum.first = cmp.Or(sum.first, j.Handle)
				sum.last = j.Handle
				if k := server.UniqueKey(j.Function, j.Unique, j.Payload); k != "" {
					queued[k] = true
				}
			case store.AlreadyImported:
				sum.already++
			case store.Marked:
				sum.queued++
			}
		}
		rows = rows[n:]
	}
	return sum, im.Close()
}

func (s importSummary) print(w io.Writer, from, to string) {
	fmt.Fprintf(w, "%s: imported %d of %d jobs from %s (%d high, %d normal, %d low; %d with an epoch time)",
		to, s.added, s.rows, from, s.byPriority[gearbridge.PriorityHigh], s.byPriority[gearbridge.PriorityNormal],
		s.byPriority[gearbridge.PriorityLow], s.scheduled)
	if s.added > 0 {
		fmt.Fprintf(w, ", handles %s to %s", s.first, s.last)
	}
	fmt.Fprintln(w)
	if s.already > 0 {
		fmt.Fprintf(w, "  %d imported by an earlier run, not added again\n", s.already)
	}
	if s.queued > 0 {
		fmt.Fprintf(w, "  %d already queued in %s with the same function and unique, not added\n", s.queued, to)
	}
}
