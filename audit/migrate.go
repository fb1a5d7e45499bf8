package audit

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migration is one ordered schema step, applied in its own transaction.
type migration struct {
	version int
	name    string
	stmts   []string
}

// migrations are applied in order; never edit a released one, append.
var migrations = []migration{
	{1, "events table", []string{
		`CREATE TABLE events (
			id           TEXT PRIMARY KEY,
			time_ms      INTEGER NOT NULL,
			kind         TEXT NOT NULL,
			client_ip    TEXT NOT NULL DEFAULT '',
			user         TEXT NOT NULL DEFAULT '',
			provider     TEXT NOT NULL DEFAULT '',
			service      TEXT NOT NULL DEFAULT '',
			category     TEXT NOT NULL DEFAULT '',
			endpoint     TEXT NOT NULL DEFAULT '',
			model        TEXT NOT NULL DEFAULT '',
			dest_host    TEXT NOT NULL DEFAULT '',
			action       TEXT NOT NULL DEFAULT '',
			rule         TEXT NOT NULL DEFAULT '',
			tokens_in    INTEGER NOT NULL DEFAULT 0,
			tokens_out   INTEGER NOT NULL DEFAULT 0,
			req_bytes    INTEGER NOT NULL DEFAULT 0,
			resp_bytes   INTEGER NOT NULL DEFAULT 0,
			status       INTEGER NOT NULL DEFAULT 0,
			key_fp       TEXT NOT NULL DEFAULT '',
			corporate    INTEGER,
			policy_hash  TEXT NOT NULL DEFAULT '',
			redactions   INTEGER NOT NULL DEFAULT 0,
			findings     INTEGER NOT NULL DEFAULT 0,
			flows        INTEGER NOT NULL DEFAULT 0,
			sensor_bytes INTEGER NOT NULL DEFAULT 0,
			event        TEXT NOT NULL
		)`,
		`CREATE INDEX events_time ON events(time_ms)`,
		`CREATE INDEX events_kind ON events(kind, time_ms)`,
		`CREATE INDEX events_service ON events(service, time_ms)`,
		`CREATE INDEX events_client ON events(client_ip, time_ms)`,
	}},
	{2, "findings by type", []string{
		// One row per (event, finding type), so that reports count
		// findings by type with an index instead of decoding JSON.
		`CREATE TABLE findings (
			event_id TEXT NOT NULL,
			time_ms  INTEGER NOT NULL,
			type     TEXT NOT NULL,
			count    INTEGER NOT NULL
		)`,
		`CREATE INDEX findings_time ON findings(time_ms, type)`,
		`CREATE INDEX findings_event ON findings(event_id)`,
		// Backfill from the events stored under version 1.
		`INSERT INTO findings (event_id, time_ms, type, count)
			SELECT e.id, e.time_ms, j.key, j.value
			FROM events e, json_each(e.event, '$.findings') j
			WHERE json_type(e.event, '$.findings') = 'object'`,
		// Keep the findings table in step with deletions (retention).
		`CREATE TRIGGER events_delete_findings AFTER DELETE ON events
			BEGIN DELETE FROM findings WHERE event_id = old.id; END`,
	}},
}

const createSchemaVersion = `CREATE TABLE IF NOT EXISTS schema_version (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_ms INTEGER NOT NULL
)`

// schemaVersion returns the highest applied migration, 0 for a new file.
func schemaVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'`).Scan(&n)
	if err != nil || n == 0 {
		return 0, err
	}
	var v sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT max(version) FROM schema_version`).Scan(&v); err != nil {
		return 0, err
	}
	return int(v.Int64), nil
}

// migrate applies the migrations up to target, each in its own
// (immediate) transaction that re-checks the version, so that two processes
// opening one store at once do not apply a step twice.
func migrate(ctx context.Context, db *sql.DB, target int) error {
	if _, err := db.ExecContext(ctx, createSchemaVersion); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	cur, err := schemaVersion(ctx, db)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if cur > len(migrations) {
		return fmt.Errorf("migrate: schema version %d is newer than this binary knows (%d)", cur, len(migrations))
	}
	for _, m := range migrations {
		if m.version <= cur || m.version > target {
			continue
		}
		if err := applyMigration(ctx, db, m); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, m migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate to %d: %w", m.version, err)
	}
	defer func() { _ = tx.Rollback() }()
	cur, err := schemaVersion(ctx, tx)
	if err != nil {
		return fmt.Errorf("migrate to %d: %w", m.version, err)
	}
	if cur >= m.version {
		return nil // another process got there first
	}
	for _, st := range m.stmts {
		if _, err := tx.ExecContext(ctx, st); err != nil {
			return fmt.Errorf("migrate to %d (%s): %w", m.version, m.name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied_ms) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("migrate to %d: %w", m.version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate to %d: %w", m.version, err)
	}
	return nil
}
