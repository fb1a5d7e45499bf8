// Package audit owns the audit event model and everything downstream of it:
// the sinks (JSONL trail, embedded SQLite store, fan-out), ULID event IDs,
// the shadow-AI inventory and the compliance reports.
//
// # Contracts
//
//   - Event (event.go) is shared by proxy, DNS and sensor events. It never
//     holds a raw secret; Prompt is set only as the policy's retention mode
//     says, and reports never print it.
//   - Sink.Write never blocks the caller for long. JSONL and Store hand the
//     event to a bounded channel read by one writer goroutine; when the
//     channel is full the event is dropped and counted (Stats().Dropped) and
//     a rate-limited warning is logged. Nothing is ever dropped silently.
//   - Ownership: after Write the event belongs to the sinks, which read it
//     from their own goroutines. The caller must not modify it afterwards.
//     Multi passes the same pointer to every sink (reads only).
//   - Close stops accepting events, writes what is queued, flushes and
//     closes. Writes after Close are counted as dropped.
//
// # Event IDs
//
// NewID makes a ULID (48-bit millisecond time, 80 random bits from
// crypto/rand, Crockford base32). IDGen adds the ULID monotonic mode: within
// one millisecond, or when the clock steps back, the previous random part is
// incremented, so IDs from one generator strictly increase. oklog/ulid would
// do the same; 80 lines of our own avoid a dependency.
//
// # JSONL trail
//
// One JSON object per line, for log shippers. The file is opened in append
// mode with mode 0600 and rotated by size (audit.jsonl → audit.jsonl.1 → …,
// keeping MaxFiles). "-" or "stdout" writes to stdout. Lines are buffered
// and flushed when the queue runs dry, at least every FlushInterval (1 s),
// and on Close.
//
// # Store
//
// SQLite through modernc.org/sqlite (pure Go, CGO_ENABLED=0), file
// DATA_DIR/events.db (StorePath), mode 0600, WAL journal, synchronous=NORMAL
// (durable across process crashes; a power loss may lose the last
// transactions, acceptable for an audit copy that the JSONL trail doubles),
// busy_timeout 5 s, IMMEDIATE write transactions.
//
//   - Schema: the events table has the scalar columns used for querying
//     and aggregation, plus the whole event as JSON (the source of truth
//     for Query). Migrations are ordered, each applied in its own
//     transaction that re-checks schema_version, so two processes opening
//     one file cannot apply a step twice. v1 creates events and its
//     indexes (time, kind, service, client); v2 adds the findings table
//     (one row per event and finding type) backfilled from the event JSON,
//     with a delete trigger. A file with a newer version than the binary
//     knows is refused by writers.
//   - Writes: the writer takes one event, then whatever else is queued up
//     to BatchSize, and inserts the batch in one transaction with prepared
//     statements. It never waits to fill a batch: under low load latency is
//     one commit, under load batches grow on their own (500 per commit in
//     BenchmarkStoreWrite). FlushInterval is thus an upper bound that the
//     writer always meets. Duplicate IDs are ignored (INSERT OR IGNORE), so
//     replaying a trail is idempotent.
//   - Retention: events older than Retention are deleted at open and every
//     SweepInterval, in chunks of 5000 rows to keep write locks short.
//   - Readers (inventory, report) use OpenStoreReadOnly, which works while
//     `aigress run` writes (WAL).
//
// # Inventory
//
// BuildInventory (events in memory) and Store.Inventory (scalar columns
// only, no JSON decoding) feed the same aggregator, so both give the same
// result; memory grows with distinct services, clients and accounts, not
// with events. Events without provider and service (tunnels to ordinary
// hosts, DNS look-ups of ordinary names) are not AI traffic and are left
// out. Per service: requests are intercepted requests; tunnels, DNS
// queries and sensor flows are counted apart; blocked counts refused
// requests and refused CONNECTs. A service's status comes from the
// SanctionFunc when it knows the service (basis "policy"), else from the
// recorded decisions (basis "decisions"): sanctioned when some request was
// let through (allow, alert, redact), unsanctioned when every decision
// refused it, unknown when no decision was recorded (DNS, sensor and tunnel
// only). Credentials are grouped by (provider, fingerprint); the latest
// corporate/personal marking wins.
//
// # Reports
//
// ReportBuilder streams events (Store.Report) or a slice (BuildReport) into
// ReportData: period, policy versions (distinct policy_hash with first and
// last use), collection counts per kind, a zero-filled timeline (hourly up
// to 3 days, daily up to 180 days, else weekly, in the report's time zone;
// kept per hour while streaming so memory is bounded), top services and
// users (a user, or the client IP when no user is known), findings by type,
// decisions by action, unsanctioned services, credentials, and notable
// events (blocked, redacted, alerted, with findings, or on a personal
// account; the first MaxNotable in time order, with the total).
//
// RenderReport writes html, csv or json. The HTML is one file rendered with
// html/template (escaping everything): inline CSS (print-friendly, A4),
// inline SVG charts computed here (stacked bars over time, horizontal bars
// for services, users and findings), no script and no external reference.
// The CSV is a long table, section,item,metric,value, one row per figure,
// so that every table fits one file and spreadsheets can pivot it; cells
// starting with = + - @ are prefixed with ' against formula injection.
// Reports never include prompt text; decision reasons are clipped.
package audit
