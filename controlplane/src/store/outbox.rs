//! Integrations and their delivery outbox: a delivery is a row before it is
//! attempted, and every attempt is logged on its row.

use rusqlite::{params, Row};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// A delivery to enqueue.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub integration_id: String,
    pub event: String,
    pub incident_id: Option<String>,
    /// What the delivery is about when it is one of several (an IP reported).
    pub subject: Option<String>,
    pub payload: String,
    /// `pending`, or `skipped` when the plan already says why not.
    pub state: &'static str,
    pub note: Option<String>,
    pub now_ms: u64,
}

/// A delivery as the log shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub id: i64,
    pub integration_id: String,
    pub event: String,
    pub incident_id: Option<String>,
    pub subject: Option<String>,
    /// pending, sending, delivered, failed or skipped.
    pub state: String,
    pub attempts: u32,
    pub next_attempt_ms: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    /// One entry per attempt: `{at_ms, status, result}`.
    pub log: serde_json::Value,
    #[serde(skip)]
    pub payload: String,
}

const COLUMNS: &str = "id, integration_id, event, incident_id, subject, state, attempts, \
     next_attempt_ms, created_ms, updated_ms, last_status, last_error, log, payload";

fn record(r: &Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    let log: String = r.get(12)?;
    Ok(DeliveryRecord {
        id: r.get(0)?,
        integration_id: r.get(1)?,
        event: r.get(2)?,
        incident_id: r.get(3)?,
        subject: r.get(4)?,
        state: r.get(5)?,
        attempts: r.get(6)?,
        next_attempt_ms: r.get::<_, i64>(7)? as u64,
        created_ms: r.get::<_, i64>(8)? as u64,
        updated_ms: r.get::<_, i64>(9)? as u64,
        last_status: r.get(10)?,
        last_error: r.get(11)?,
        log: serde_json::from_str(&log).unwrap_or_default(),
        payload: r.get(13)?,
    })
}

impl Store {
    /// Every integration's record, in creation order.
    pub fn integration_records(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT record FROM integrations ORDER BY rowid")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    pub fn put_integration(&self, id: &str, name: &str, record: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT INTO integrations (id, name, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET name = ?2, record = ?3",
                params![id, name, record],
            )
            .map_err(self.err())?;
        Ok(())
    }

    pub fn delete_integration(&self, id: &str) -> Result<(), StoreError> {
        self.db
            .execute("DELETE FROM integrations WHERE id = ?1", params![id])
            .map_err(self.err())?;
        Ok(())
    }

    /// Write deliveries in one transaction; returns their ids.
    pub fn insert_deliveries(&self, new: &[NewDelivery]) -> Result<Vec<i64>, StoreError> {
        let tx = self.db.unchecked_transaction().map_err(self.err())?;
        let mut ids = Vec::with_capacity(new.len());
        for d in new {
            let log = match &d.note {
                Some(note) => {
                    serde_json::json!([{"at_ms": d.now_ms, "status": null, "result": note}])
                        .to_string()
                }
                None => "[]".into(),
            };
            tx.execute(
                "INSERT INTO deliveries (integration_id, event, incident_id, subject, payload, state,
                     next_attempt_ms, created_ms, updated_ms, last_error, log)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7, ?8, ?9)",
                params![
                    d.integration_id,
                    d.event,
                    d.incident_id,
                    d.subject,
                    d.payload,
                    d.state,
                    d.now_ms as i64,
                    d.note,
                    log
                ],
            )
            .map_err(self.err())?;
            ids.push(tx.last_insert_rowid());
        }
        tx.commit().map_err(self.err())?;
        Ok(ids)
    }

    /// An operator approved announcing an incident upstream (bgp, `when =
    /// "approval"`).
    pub fn approve_announcement(
        &self,
        integration_id: &str,
        incident_id: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT OR IGNORE INTO bgp_approvals (integration_id, incident_id, approved_at_ms)
                 VALUES (?1, ?2, ?3)",
                params![integration_id, incident_id, now_ms as i64],
            )
            .map(drop)
            .map_err(self.err())
    }

    /// The incidents an integration's announcements are approved for.
    pub fn approved_announcements(
        &self,
        integration_id: &str,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT incident_id FROM bgp_approvals WHERE integration_id = ?1")
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![integration_id], |r| r.get::<_, String>(0))
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Attempts cut short by a stop are due again.
    pub fn requeue_in_flight(&self) -> Result<usize, StoreError> {
        self.db
            .execute(
                "UPDATE deliveries SET state = 'pending' WHERE state = 'sending'",
                [],
            )
            .map_err(self.err())
    }

    /// Take up to `limit` due deliveries, marking them in flight.
    pub fn claim_due(
        &self,
        now_ms: u64,
        limit: usize,
        in_flight: &std::collections::HashMap<String, usize>,
        per_integration: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let tx = self.db.unchecked_transaction().map_err(self.err())?;
        let rows = {
            // Oldest first, at most `per_integration` in flight for each
            // integration: one receiver that never answers holds its own
            // slots, not everyone's.
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM deliveries WHERE state = 'pending' AND next_attempt_ms <= ?1
                     ORDER BY next_attempt_ms, id LIMIT ?2"
                ))
                .map_err(self.err())?;
            let rows = stmt
                .query_map(params![now_ms as i64, (limit * 8 + 64) as i64], record)
                .map_err(self.err())?;
            let mut taken = Vec::new();
            let mut counts = in_flight.clone();
            for row in rows {
                let row = row.map_err(self.err())?;
                if taken.len() >= limit {
                    break;
                }
                let n = counts.entry(row.integration_id.clone()).or_default();
                if *n < per_integration {
                    *n += 1;
                    taken.push(row);
                }
            }
            taken
        };
        for r in &rows {
            tx.execute(
                "UPDATE deliveries SET state = 'sending' WHERE id = ?1",
                params![r.id],
            )
            .map_err(self.err())?;
        }
        tx.commit().map_err(self.err())?;
        Ok(rows)
    }

    /// Whether an integration has a delivery of `event` not yet attempted.
    pub fn waiting(&self, integration_id: &str, event: &str) -> Result<bool, StoreError> {
        self.db
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM deliveries WHERE integration_id = ?1 AND event = ?2
                     AND state = 'pending' AND attempts = 0)",
                params![integration_id, event],
                |r| r.get::<_, bool>(0),
            )
            .map_err(self.err())
    }

    /// Whether a delivery is in flight or due by `now_ms`.
    pub fn busy_now(&self, now_ms: u64) -> Result<bool, StoreError> {
        self.db
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM deliveries WHERE state = 'sending'
                     OR (state = 'pending' AND next_attempt_ms <= ?1))",
                params![now_ms as i64],
                |r| r.get::<_, bool>(0),
            )
            .map_err(self.err())
    }

    /// When the next pending delivery is due, if any.
    pub fn next_due_ms(&self) -> Result<Option<u64>, StoreError> {
        self.db
            .query_row(
                "SELECT MIN(next_attempt_ms) FROM deliveries WHERE state = 'pending'",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map(|v| v.map(|v| v as u64))
            .map_err(self.err())
    }

    /// Record an attempt's result and the delivery's new state.
    #[allow(clippy::too_many_arguments)]
    pub fn finish_attempt(
        &self,
        id: i64,
        state: &str,
        attempts: u32,
        next_attempt_ms: u64,
        status: Option<u16>,
        result: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let entry = serde_json::json!({"at_ms": now_ms, "status": status, "result": result});
        self.db
            .execute(
                "UPDATE deliveries SET state = ?2, attempts = ?3, next_attempt_ms = ?4, last_status = ?5,
                     last_error = CASE WHEN ?2 = 'delivered' THEN NULL ELSE ?6 END, updated_ms = ?7,
                     log = json_insert(log, '$[#]', json(?8))
                 WHERE id = ?1",
                params![
                    id,
                    state,
                    attempts,
                    next_attempt_ms as i64,
                    status,
                    result,
                    now_ms as i64,
                    entry.to_string()
                ],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// The delivery log of an integration, newest first, and its length.
    pub fn deliveries(
        &self,
        integration_id: &str,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<DeliveryRecord>, u64), StoreError> {
        let total = self
            .db
            .query_row(
                "SELECT COUNT(*) FROM deliveries WHERE integration_id = ?1",
                params![integration_id],
                |r| r.get::<_, i64>(0),
            )
            .map_err(self.err())? as u64;
        let mut stmt = self
            .db
            .prepare(&format!(
                "SELECT {COLUMNS} FROM deliveries WHERE integration_id = ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3"
            ))
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![integration_id, limit, offset], record)
            .map_err(self.err())?;
        Ok((rows.collect::<Result<_, _>>().map_err(self.err())?, total))
    }

    /// When this integration last delivered something about `subject`, if at or
    /// after `since_ms`.
    pub fn delivered_about(
        &self,
        integration_id: &str,
        subject: &str,
        since_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.db
            .query_row(
                "SELECT MAX(updated_ms) FROM deliveries WHERE integration_id = ?1 AND subject = ?2
                     AND state = 'delivered' AND updated_ms >= ?3",
                params![integration_id, subject, since_ms as i64],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map(|v| v.map(|v| v as u64))
            .map_err(self.err())
    }

    /// Requests of this integration that reached its server since `since_ms`
    /// (what a daily quota counts).
    pub fn requests_since(&self, integration_id: &str, since_ms: u64) -> Result<u64, StoreError> {
        self.db
            .query_row(
                "SELECT COUNT(*) FROM deliveries WHERE integration_id = ?1 AND last_status IS NOT NULL
                     AND last_status <> 429 AND updated_ms >= ?2",
                params![integration_id, since_ms as i64],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(self.err())
    }

    /// Deliveries by integration and state (for metrics).
    pub fn delivery_counts(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT integration_id, state, COUNT(*) FROM deliveries GROUP BY 1, 2 ORDER BY 1, 2")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }
}
