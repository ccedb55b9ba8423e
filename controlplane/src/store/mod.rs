//! SQLite (WAL mode) for the node id, incidents with their events, and rules.
//! A rule is written here before it reaches the tables; after a restart, the
//! active rules go back into the tables before forwarding starts and open
//! incidents carry on.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

mod outbox;
pub use outbox::{DeliveryRecord, NewDelivery};

use crate::detect::{Incident, IncidentEvent, SavedBaseline};
use crate::rule::Rule;

/// Store errors; the text is the message shown.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("store: cannot encode a record: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("store {path} has schema version {found}, newer than this levee's {known}: it was written by a newer levee (run that, or move the store aside to start afresh)")]
    Newer {
        path: String,
        found: u32,
        known: u32,
    },
    #[error("store {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug)]
pub struct Store {
    db: Connection,
    path: String,
}

/// The schema's history: migration `n` (from 1) takes a store from version
/// `n - 1` to `n` (`PRAGMA user_version`). Append, never edit: a store made by
/// any earlier levee is brought up to date at open. Migration 1 is the schema
/// levee had before it counted versions, so it is written to apply over it.
const MIGRATIONS: &[&str] = &[SCHEMA_V1, COUNTERS_V2];

/// Durable counters (the incident numbers reserved ahead of use).
const COUNTERS_V2: &str = "
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// Counter name: incident numbers up to this one may have been handed out.
const INCIDENTS_RESERVED: &str = "incident_numbers_reserved";

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS node (id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    attack_type TEXT NOT NULL,
    severity TEXT NOT NULL,
    started_at_ns INTEGER NOT NULL,
    resolved_at_ns INTEGER,
    last_event TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS incident_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    event TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rules (
    id INTEGER PRIMARY KEY,
    incident_id TEXT NOT NULL,
    state TEXT NOT NULL,
    record TEXT NOT NULL,
    expires_at_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS integrations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    integration_id TEXT NOT NULL,
    event TEXT NOT NULL,
    incident_id TEXT,
    subject TEXT,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    log TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS baselines (
    target TEXT PRIMARY KEY,
    saved_at_ns INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bgp_approvals (
    integration_id TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    approved_at_ms INTEGER NOT NULL,
    PRIMARY KEY (integration_id, incident_id)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_attempt_ms);
CREATE INDEX IF NOT EXISTS deliveries_of ON deliveries (integration_id, id);
";

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let p = path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: p.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let db = Connection::open(path).map_err(err)?;
        // The outbox has a connection of its own to the same file: writers wait
        // for each other instead of failing.
        db.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        db.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        // A rule is applied once recorded: recorded means on the disk (the
        // engine writes a window's changes in one transaction, one sync).
        db.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        let store = Store { db, path: p };
        store.migrate()?;
        Ok(store)
    }

    /// The schema version this levee writes.
    pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

    /// Bring the schema up to [`Store::SCHEMA_VERSION`], each step in a
    /// transaction of its own with the version it reaches. A store from a newer
    /// levee is refused as it is: it is not corrupt, and must not be moved aside
    /// or written by a levee that does not know its schema.
    fn migrate(&self) -> Result<(), StoreError> {
        let version: u32 = self
            .db
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.err())?;
        if version > Self::SCHEMA_VERSION {
            return Err(StoreError::Newer {
                path: self.path.clone(),
                found: version,
                known: Self::SCHEMA_VERSION,
            });
        }
        for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.db.unchecked_transaction().map_err(self.err())?;
            tx.execute_batch(step).map_err(self.err())?;
            tx.pragma_update(None, "user_version", i + 1)
                .map_err(self.err())?;
            tx.commit().map_err(self.err())?;
        }
        Ok(())
    }

    /// Open the store at `path` for `levee run`, checked (`PRAGMA quick_check`).
    /// One that cannot be opened or fails the check is moved aside, never
    /// silently replaced, and a new one is started: the reason comes back, for
    /// the operator (health, log).
    pub fn open_checked(path: &Path) -> Result<(Store, Option<String>), StoreError> {
        if !path.exists() {
            tracing::warn!(
                path = %path.display(),
                "no store yet: a new one is made (a new node id, nothing to restore)"
            );
            return Ok((Store::open(path)?, None));
        }
        let problem = match Store::open(path) {
            Ok(store) => match store.check() {
                Ok(()) => return Ok((store, None)),
                Err(problem) => problem,
            },
            Err(e @ StoreError::Newer { .. }) => return Err(e),
            Err(e) => e.to_string(),
        };
        let stamp = crate::clock::wall_s();
        let aside = std::path::PathBuf::from(format!("{}.corrupt-{stamp}", path.display()));
        let moved = |from: &Path, to: &Path| {
            std::fs::rename(from, to).map_err(|source| StoreError::File {
                path: from.display().to_string(),
                source,
            })
        };
        moved(path, &aside)?;
        for suffix in ["-wal", "-shm"] {
            let side = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if side.exists() {
                moved(&side, Path::new(&format!("{}{suffix}", aside.display())))?;
            }
        }
        let store = Store::open(path)?;
        let reason = format!(
            "the store {} could not be read ({problem}); it was moved to {} and a new one started: \
             the configuration's rules apply, earlier rules, incidents and baselines are not restored",
            path.display(),
            aside.display()
        );
        tracing::error!("{reason}");
        Ok((store, Some(reason)))
    }

    /// SQLite's own check of the file, and every table readable.
    fn check(&self) -> Result<(), String> {
        let verdict: String = self
            .db
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| e.to_string())?;
        if verdict != "ok" {
            return Err(format!("quick_check: {verdict}"));
        }
        for table in [
            "node",
            "incidents",
            "incident_events",
            "rules",
            "integrations",
            "deliveries",
            "baselines",
            "bgp_approvals",
            "counters",
        ] {
            self.db
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(|e| format!("{table}: {e}"))?;
        }
        Ok(())
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// This node's id, made (`nd_` + 12 random hex digits) at first start.
    pub fn node_id(&self) -> Result<String, StoreError> {
        if let Some(id) = self
            .db
            .query_row("SELECT id FROM node LIMIT 1", [], |r| r.get::<_, String>(0))
            .optional()
            .map_err(self.err())?
        {
            return Ok(id);
        }
        let id = crate::ids::random_hex("nd_", 6);
        self.db
            .execute("INSERT INTO node (id) VALUES (?1)", params![id])
            .map_err(self.err())?;
        Ok(id)
    }

    /// Record an event and the incident's latest state.
    pub fn event(&self, e: &IncidentEvent, incident: &Incident) -> Result<(), StoreError> {
        let payload = serde_json::to_string(e)?;
        let state = if incident.resolved_at_ns.is_some() {
            "resolved"
        } else {
            "open"
        };
        // Inside the engine's window transaction, or one of its own.
        let own = self.db.is_autocommit();
        let tx = if own {
            Some(self.db.unchecked_transaction().map_err(self.err())?)
        } else {
            None
        };
        let db = &self.db;
        db.execute(
            "INSERT INTO incidents (id, target, attack_type, severity, started_at_ns, resolved_at_ns, last_event, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(id) DO UPDATE SET attack_type = ?3, severity = ?4, resolved_at_ns = ?6, last_event = ?7, state = ?8",
            params![
                e.incident_id,
                e.target,
                e.attack_type.name(),
                serde_json::to_value(e.severity)?.as_str().unwrap_or_default(),
                incident.started_at_ns as i64,
                incident.resolved_at_ns.map(|n| n as i64),
                payload,
                state
            ],
        )
        .map_err(self.err())?;
        db.execute(
            "INSERT INTO incident_events (incident_id, event, payload) VALUES (?1, ?2, ?3)",
            params![e.incident_id, e.event, payload],
        )
        .map_err(self.err())?;
        match tx {
            Some(tx) => tx.commit().map_err(self.err()),
            None => Ok(()),
        }
    }

    /// Begin the transaction that records one window's changes (one sync to
    /// the disk for all of them).
    pub fn begin(&self) -> Result<(), StoreError> {
        self.db.execute_batch("BEGIN IMMEDIATE").map_err(self.err())
    }

    /// Commit it; on failure it is rolled back (nothing of it was recorded).
    pub fn commit(&self) -> Result<(), StoreError> {
        let result = self.db.execute_batch("COMMIT").map_err(self.err());
        if result.is_err() && !self.db.is_autocommit() {
            let _ = self.db.execute_batch("ROLLBACK");
        }
        result
    }

    /// Write a rule (before it is applied, and at every change of state).
    pub fn rule(&self, r: &Rule) -> Result<(), StoreError> {
        let record = serde_json::to_string(r)?;
        let state = serde_json::to_value(r.state)?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.db
            .execute(
                "INSERT INTO rules (id, incident_id, state, record, expires_at_ns) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET state = ?3, record = ?4, expires_at_ns = ?5",
                params![r.id, r.incident_id, state, record, r.expires_at_ns as i64],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Rules that were active (or staged) when the node stopped, and how many
    /// records could not be read (left out, not fatal).
    pub fn live_rules(&self) -> Result<(Vec<Rule>, usize), StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT record FROM rules WHERE state IN ('active', 'staged') ORDER BY id")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.err())?;
        let mut out = Vec::new();
        let mut unreadable = 0;
        for row in rows {
            match serde_json::from_str(&row.map_err(self.err())?) {
                Ok(rule) => out.push(rule),
                Err(_) => unreadable += 1,
            }
        }
        Ok((out, unreadable))
    }

    /// The highest rule id used so far.
    pub fn max_rule_id(&self) -> Result<u32, StoreError> {
        self.db
            .query_row("SELECT COALESCE(MAX(id), 0) FROM rules", [], |r| {
                r.get::<_, u32>(0)
            })
            .map_err(self.err())
    }

    /// The last event and start time of every incident still open, and how
    /// many records could not be read (left out, not fatal).
    pub fn open_incidents(&self) -> Result<(Vec<(IncidentEvent, u64)>, usize), StoreError> {
        let mut stmt = self.db.prepare("SELECT last_event, started_at_ns FROM incidents WHERE state = 'open' ORDER BY started_at_ns").map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(self.err())?;
        let mut out = Vec::new();
        let mut unreadable = 0;
        for row in rows {
            let (event, started) = row.map_err(self.err())?;
            match serde_json::from_str(&event) {
                Ok(event) => out.push((event, started as u64)),
                Err(_) => unreadable += 1,
            }
        }
        Ok((out, unreadable))
    }

    /// The highest incident number that may have been handed out: the
    /// highest recorded (ids end in it, so retention removing incidents does
    /// not matter) or reserved ahead (an incident whose record never reached
    /// the disk). The next incident takes the one after it.
    pub fn incident_numbers_used(&self) -> Result<u64, StoreError> {
        Ok(self
            .incident_count()?
            .max(self.incident_numbers_reserved()?))
    }

    /// Incident numbers up to `upto` may be handed out: recorded before they
    /// are (inside the window's transaction, or on its own).
    pub fn reserve_incident_numbers(&self, upto: u64) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT INTO counters (name, value) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET value = max(value, ?2)",
                params![INCIDENTS_RESERVED, upto as i64],
            )
            .map_err(self.err())?;
        Ok(())
    }

    fn incident_numbers_reserved(&self) -> Result<u64, StoreError> {
        let v: Option<i64> = self
            .db
            .query_row(
                "SELECT value FROM counters WHERE name = ?1",
                params![INCIDENTS_RESERVED],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())?;
        Ok(v.unwrap_or(0).max(0) as u64)
    }

    /// The highest incident number recorded.
    fn incident_count(&self) -> Result<u64, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT id FROM incidents")
            .map_err(self.err())?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.err())?;
        let mut max = 0u64;
        for id in ids {
            let id = id.map_err(self.err())?;
            if let Some(n) = id.rsplit('_').next().and_then(|n| n.parse::<u64>().ok()) {
                max = max.max(n);
            }
        }
        Ok(max)
    }

    /// Remove what is older than `cutoff_ns`: resolved incidents and their
    /// events, ended rules, finished deliveries. Open incidents, live rules and
    /// pending deliveries always stay. Returns the rows removed, by kind.
    pub fn prune(&self, cutoff_ns: u64) -> Result<[(&'static str, usize); 5], StoreError> {
        let cutoff = i64::try_from(cutoff_ns).unwrap_or(i64::MAX);
        let cutoff_ms = cutoff / 1_000_000;
        let old_incidents =
            "SELECT id FROM incidents WHERE state = 'resolved' AND resolved_at_ns < ?1";
        let events = self
            .db
            .execute(
                &format!("DELETE FROM incident_events WHERE incident_id IN ({old_incidents})"),
                [cutoff],
            )
            .map_err(self.err())?;
        let incidents = self
            .db
            .execute(
                "DELETE FROM incidents WHERE state = 'resolved' AND resolved_at_ns < ?1",
                [cutoff],
            )
            .map_err(self.err())?;
        let rules = self
            .db
            .execute(
                "DELETE FROM rules WHERE state IN ('expired', 'removed', 'refused') AND expires_at_ns < ?1",
                [cutoff],
            )
            .map_err(self.err())?;
        let deliveries = self
            .db
            .execute(
                "DELETE FROM deliveries WHERE state IN ('delivered', 'failed', 'skipped') AND updated_ms < ?1",
                [cutoff_ms],
            )
            .map_err(self.err())?;
        let baselines = self
            .db
            .execute("DELETE FROM baselines WHERE saved_at_ns < ?1", [cutoff])
            .map_err(self.err())?;
        Ok([
            ("incidents", incidents),
            ("incident_events", events),
            ("rules", rules),
            ("deliveries", deliveries),
            ("baselines", baselines),
        ])
    }

    /// Save what the detector has learnt, in one transaction (a target's
    /// earlier record is replaced).
    pub fn save_baselines(&self, saved: &[SavedBaseline], now_ns: u64) -> Result<(), StoreError> {
        let at = i64::try_from(now_ns).unwrap_or(i64::MAX);
        let own = self.db.is_autocommit();
        let tx = if own {
            Some(self.db.unchecked_transaction().map_err(self.err())?)
        } else {
            None
        };
        {
            let mut insert = self
                .db
                .prepare_cached(
                    "INSERT OR REPLACE INTO baselines (target, saved_at_ns, record) VALUES (?1, ?2, ?3)",
                )
                .map_err(self.err())?;
            for b in saved {
                insert
                    .execute(params![b.target, at, serde_json::to_string(b)?])
                    .map_err(self.err())?;
            }
        }
        match tx {
            Some(tx) => tx.commit().map_err(self.err()),
            None => Ok(()),
        }
    }

    /// Baselines saved at or after `since_ns`, with when each was saved; a
    /// record that cannot be read is left out and counted.
    pub fn baselines(
        &self,
        since_ns: u64,
    ) -> Result<(Vec<(SavedBaseline, u64)>, usize), StoreError> {
        let since = i64::try_from(since_ns).unwrap_or(i64::MAX);
        let mut q = self
            .db
            .prepare(
                "SELECT record, saved_at_ns FROM baselines WHERE saved_at_ns >= ?1 ORDER BY target",
            )
            .map_err(self.err())?;
        let rows = q
            .query_map([since], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        let mut unreadable = 0;
        for row in rows {
            let (record, at) = row.map_err(self.err())?;
            match serde_json::from_str::<SavedBaseline>(&record) {
                Ok(b) => out.push((b, at.max(0) as u64)),
                Err(_) => unreadable += 1,
            }
        }
        Ok((out, unreadable))
    }

    /// Incidents, newest first, with their last event's payload.
    pub fn incidents(&self, q: &IncidentQuery) -> Result<(Vec<IncidentRecord>, u64), StoreError> {
        let mut sql = String::from(" FROM incidents WHERE 1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(status) = &q.status {
            sql.push_str(" AND state = ?");
            args.push(status.clone().into());
        }
        if let Some(since) = q.since_ns {
            sql.push_str(
                " AND (started_at_ns >= ? OR resolved_at_ns IS NULL OR resolved_at_ns >= ?)",
            );
            args.push((since as i64).into());
            args.push((since as i64).into());
        }
        if let Some(target) = &q.target {
            sql.push_str(" AND target = ?");
            args.push(target.clone().into());
        }
        let total: i64 = self
            .db
            .query_row(
                &format!("SELECT COUNT(*){sql}"),
                rusqlite::params_from_iter(args.iter()),
                |r| r.get(0),
            )
            .map_err(self.err())?;
        let mut stmt = self
            .db
            .prepare(&format!(
                "SELECT last_event, state{sql} ORDER BY started_at_ns DESC, id DESC LIMIT ? OFFSET ?"
            ))
            .map_err(self.err())?;
        args.push((q.limit as i64).into());
        args.push((q.offset as i64).into());
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (event, state) = row.map_err(self.err())?;
            out.push(IncidentRecord {
                last_event: serde_json::from_str(&event)?,
                status: state,
            });
        }
        Ok((out, total as u64))
    }

    /// One incident and all its events, oldest first.
    pub fn incident(
        &self,
        id: &str,
    ) -> Result<Option<(IncidentRecord, Vec<serde_json::Value>)>, StoreError> {
        let row = self
            .db
            .query_row(
                "SELECT last_event, state FROM incidents WHERE id = ?1",
                params![id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(self.err())?;
        let Some((event, status)) = row else {
            return Ok(None);
        };
        let mut stmt = self
            .db
            .prepare("SELECT payload FROM incident_events WHERE incident_id = ?1 ORDER BY seq")
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![id], |r| r.get::<_, String>(0))
            .map_err(self.err())?;
        let mut events = Vec::new();
        for row in rows {
            events.push(serde_json::from_str(&row.map_err(self.err())?)?);
        }
        Ok(Some((
            IncidentRecord {
                last_event: serde_json::from_str(&event)?,
                status,
            },
            events,
        )))
    }

    /// Incidents per state (open, resolved).
    pub fn incident_states(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT state, COUNT(*) FROM incidents GROUP BY state ORDER BY state")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Every recorded rule in a state (or all), by id.
    pub fn rules(&self, state: Option<&str>) -> Result<Vec<Rule>, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT record FROM rules WHERE ?1 IS NULL OR state = ?1 ORDER BY id")
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![state], |r| r.get::<_, String>(0))
            .map_err(self.err())?;
        let mut out = Vec::new();
        let mut unreadable = 0;
        for row in rows {
            match serde_json::from_str(&row.map_err(self.err())?) {
                Ok(rule) => out.push(rule),
                Err(_) => unreadable += 1,
            }
        }
        if unreadable > 0 {
            tracing::warn!(
                unreadable,
                "store: rule records that cannot be read are left out"
            );
        }
        Ok(out)
    }

    /// A store that lives in memory only (nothing survives a restart).
    /// A read-only connection to a store another connection writes (WAL lets
    /// it read while the writer writes): the API's reads never wait on the
    /// control plane.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let p = path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: p.clone(),
            source,
        };
        let db = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        db.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        Ok(Store { db, path: p })
    }

    pub fn in_memory() -> Result<Store, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: ":memory:".into(),
            source,
        };
        let db = Connection::open_in_memory().map_err(err)?;
        let store = Store {
            db,
            path: ":memory:".into(),
        };
        store.migrate()?;
        Ok(store)
    }
}

/// Which incidents to list.
#[derive(Clone, Debug, Default)]
pub struct IncidentQuery {
    /// `open` or `resolved`.
    pub status: Option<String>,
    /// Started, or still open, at or after this time.
    pub since_ns: Option<u64>,
    pub target: Option<String>,
    pub limit: u64,
    pub offset: u64,
}

/// An incident as recorded: its latest event payload and its state.
#[derive(Clone, Debug)]
pub struct IncidentRecord {
    pub last_event: serde_json::Value,
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_NS: i64 = 86_400 * 1_000_000_000;

    fn count(store: &Store, table: &str) -> i64 {
        store
            .db
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    }

    fn version(store: &Store) -> u32 {
        store
            .db
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version")
    }

    #[test]
    fn a_store_from_before_versions_is_migrated_and_keeps_its_records() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("levee.db");
        {
            // What levee wrote before it counted schema versions.
            let db = Connection::open(&path).expect("db");
            db.execute_batch(SCHEMA_V1).expect("old schema");
            db.execute("INSERT INTO node (id) VALUES ('nd_0123456789ab')", [])
                .expect("node");
            db.execute(
                "INSERT INTO incidents VALUES ('inc_0123456789ab_0007', '10.0.0.1', 'UDP Flood', 'high', 0, NULL, '{}', 'open')",
                [],
            )
            .expect("incident");
        }
        let store = Store::open(&path).expect("migrated");
        assert_eq!(version(&store), Store::SCHEMA_VERSION);
        assert_eq!(store.node_id().expect("node"), "nd_0123456789ab");
        assert_eq!(store.incident_numbers_used().expect("used"), 7);
        drop(store);
        // Opening again applies nothing twice.
        let store = Store::open(&path).expect("again");
        assert_eq!(version(&store), Store::SCHEMA_VERSION);
        assert!(store.check().is_ok());
    }

    #[test]
    fn a_store_from_a_newer_levee_is_refused_and_left_where_it_is() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("levee.db");
        {
            let db = Connection::open(&path).expect("db");
            db.pragma_update(None, "user_version", Store::SCHEMA_VERSION + 1)
                .expect("version");
        }
        let err = Store::open_checked(&path).expect_err("newer store");
        let text = err.to_string();
        assert!(text.contains("newer levee"), "{text}");
        assert!(
            text.contains(&format!("version {}", Store::SCHEMA_VERSION + 1)),
            "{text}"
        );
        assert!(path.exists(), "the store must stay where it is");
        let aside = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
            .count();
        assert_eq!(aside, 0, "nothing moved aside");
    }

    #[test]
    fn incident_numbers_reserved_ahead_are_never_handed_out_again() {
        let store = Store::in_memory().expect("store");
        assert_eq!(store.incident_numbers_used().expect("used"), 0);
        store
            .db
            .execute(
                "INSERT INTO incidents VALUES ('inc_n_0003', '10.0.0.1', 'UDP Flood', 'high', 0, NULL, '{}', 'open')",
                [],
            )
            .expect("incident");
        assert_eq!(store.incident_numbers_used().expect("used"), 3);
        // Numbers 4..=64 reserved; 4 and 5 handed out, their records lost.
        store.reserve_incident_numbers(64).expect("reserve");
        assert_eq!(store.incident_numbers_used().expect("used"), 64);
        // A reservation never goes back.
        store.reserve_incident_numbers(10).expect("reserve");
        assert_eq!(store.incident_numbers_used().expect("used"), 64);
    }

    #[test]
    fn node_ids_are_random_and_kept() {
        let a = Store::in_memory().expect("a");
        let b = Store::in_memory().expect("b");
        let id = a.node_id().expect("id");
        assert!(id.starts_with("nd_") && id.len() == 15, "{id}");
        assert_eq!(a.node_id().expect("again"), id);
        assert_ne!(b.node_id().expect("other"), id);
    }

    #[test]
    fn retention_removes_what_is_over_and_keeps_what_is_not() {
        let store = Store::in_memory().expect("store");
        let now = 100 * DAY_NS;
        for (id, state, resolved) in [
            ("inc_n_0001", "resolved", Some(now - 40 * DAY_NS)),
            ("inc_n_0002", "resolved", Some(now - DAY_NS)),
            ("inc_n_0003", "open", None),
        ] {
            store
                .db
                .execute(
                    "INSERT INTO incidents VALUES (?1, '10.0.0.1', 'UDP Flood', 'high', 0, ?2, '{}', ?3)",
                    rusqlite::params![id, resolved, state],
                )
                .expect("incident");
            store
                .db
                .execute(
                    "INSERT INTO incident_events (incident_id, event, payload) VALUES (?1, 'incident.created', '{}')",
                    [id],
                )
                .expect("event");
        }
        for (id, state, expires) in [
            (1, "removed", now - 40 * DAY_NS),
            (2, "active", now - 40 * DAY_NS),
            (3, "expired", now - DAY_NS),
        ] {
            store
                .db
                .execute(
                    "INSERT INTO rules VALUES (?1, 'inc_n_0001', ?2, '{}', ?3)",
                    rusqlite::params![id, state, expires],
                )
                .expect("rule");
        }
        for (state, updated_ms) in [
            ("delivered", (now - 40 * DAY_NS) / 1_000_000),
            ("pending", (now - 40 * DAY_NS) / 1_000_000),
            ("failed", (now - DAY_NS) / 1_000_000),
        ] {
            store
                .db
                .execute(
                    "INSERT INTO deliveries (integration_id, event, payload, state, next_attempt_ms, created_ms, updated_ms) \
                     VALUES ('int_x', 'incident.created', '{}', ?1, 0, 0, ?2)",
                    rusqlite::params![state, updated_ms],
                )
                .expect("delivery");
        }
        let baseline = |target: &str| SavedBaseline {
            target: target.into(),
            windows: 50,
            pps: 9000.0,
            bps: 1e7,
            sources: 300.0,
            class_pps: [("udp_dns".to_owned(), 9000.0)].into(),
        };
        store
            .save_baselines(&[baseline("10.0.0.1")], (now - 40 * DAY_NS) as u64)
            .expect("old baseline");
        store
            .save_baselines(&[baseline("10.0.0.2")], (now - DAY_NS) as u64)
            .expect("recent baseline");
        let removed = store.prune((now - 30 * DAY_NS) as u64).expect("prune");
        assert_eq!(
            removed,
            [
                ("incidents", 1),
                ("incident_events", 1),
                ("rules", 1),
                ("deliveries", 1),
                ("baselines", 1)
            ]
        );
        let (kept, unreadable) = store.baselines(0).expect("baselines");
        assert_eq!(kept, vec![(baseline("10.0.0.2"), (now - DAY_NS) as u64)]);
        assert_eq!(unreadable, 0);
        assert_eq!(
            (
                count(&store, "incidents"),
                count(&store, "incident_events"),
                count(&store, "rules"),
                count(&store, "deliveries")
            ),
            (2, 2, 2, 2)
        );
        // Ids go on from the highest recorded, not from how many are left.
        assert_eq!(store.incident_count().expect("count"), 3);
    }

    #[test]
    fn baselines_round_trip_replace_and_skip_what_cannot_be_read() {
        let store = Store::in_memory().expect("store");
        let mut b = SavedBaseline {
            target: "10.0.0.1".into(),
            windows: 12,
            pps: 9000.0,
            bps: 1e7,
            sources: 300.0,
            class_pps: [("udp_dns".to_owned(), 9000.0)].into(),
        };
        store.save_baselines(&[b.clone()], 5).expect("save");
        b.windows = 600;
        store.save_baselines(&[b.clone()], 7).expect("save again");
        store
            .db
            .execute(
                "INSERT INTO baselines VALUES ('10.0.0.9', 7, 'not json')",
                [],
            )
            .expect("a bad row");
        let (all, unreadable) = store.baselines(0).expect("read");
        assert_eq!(all, vec![(b, 7)], "the later save replaced the earlier");
        assert_eq!(unreadable, 1);
        assert!(store.baselines(8).expect("read").0.is_empty(), "too old");
    }
}
