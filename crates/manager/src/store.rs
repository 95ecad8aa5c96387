//! The manager's store: SQLite in WAL mode, with versioned migrations.
//!
//! Every change of slices and host revisions is one transaction, so a crash at any
//! point leaves either the old or the new state, never half of one.

use std::collections::BTreeMap;
use std::path::Path;

use netslice_model::api::SlicePlan;
use netslice_model::{SliceSpec, Substrate};
use rusqlite::{Connection, OptionalExtension, params};

use crate::records;

/// Store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite error.
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored document no longer parses.
    #[error("store: corrupt {what}: {detail}")]
    Corrupt {
        /// What.
        what: String,
        /// Why.
        detail: String,
    },
    /// The database was written by a newer netslice.
    #[error("store: schema version {found} is newer than this netslice knows ({known}); run a newer manager")]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Newest this binary knows.
        known: i64,
    },
}

/// A stored slice.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceRow {
    /// Spec.
    pub spec: SliceSpec,
    /// Plan.
    pub plan: SlicePlan,
    /// Revision at which it last changed.
    pub revision: u64,
    /// Creation time (Unix seconds).
    pub created: u64,
    /// Owner (user name).
    pub owner: String,
    /// Lease end (Unix seconds).
    pub expires: u64,
    /// Being torn down: agents are removing it; the row goes once they have.
    pub deleting: bool,
}

/// Who a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// User name.
    pub user: String,
    /// `operator` or `developer`.
    pub role: String,
}

/// The store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

const MIGRATIONS: &[&str] = &[
    // 1: initial schema
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE slices (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        plan TEXT NOT NULL,
        revision INTEGER NOT NULL,
        created INTEGER NOT NULL
     );
     CREATE TABLE host_revisions (host TEXT PRIMARY KEY, revision INTEGER NOT NULL);",
    // 2: owners, leases, deletion in progress; API tokens and node credentials (hashed)
    "ALTER TABLE slices ADD COLUMN owner TEXT NOT NULL DEFAULT 'admin';
     ALTER TABLE slices ADD COLUMN expires INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE slices ADD COLUMN deleting INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE tokens (hash TEXT PRIMARY KEY, user TEXT NOT NULL, role TEXT NOT NULL, created INTEGER NOT NULL);
     CREATE TABLE node_credentials (host TEXT PRIMARY KEY, hash TEXT NOT NULL, issued INTEGER NOT NULL);",
    // 3: the audit trail: every change with its caller, written in the change's own transaction
    "CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time INTEGER NOT NULL,
        caller TEXT NOT NULL,
        role TEXT NOT NULL,
        action TEXT NOT NULL,
        object TEXT NOT NULL,
        detail TEXT NOT NULL
     );",
    // 4: the record version of each slice's plan (see `records`); rows written before are version 1
    "ALTER TABLE slices ADD COLUMN plan_version INTEGER NOT NULL DEFAULT 1;",
    // 5: measurement jobs (a manager-owned record, `state::jobs::JobV1`, with its version)
    "CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        owner TEXT NOT NULL,
        slice TEXT NOT NULL,
        version INTEGER NOT NULL,
        record TEXT NOT NULL
     );",
];

/// The job record version this manager writes.
pub const JOB_VERSION: i64 = 1;

/// One change, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// Who made it: a user name, `agent:<host>`, or `system` (housekeeping).
    pub caller: String,
    /// `operator`, `developer`, `agent` or `system`.
    pub role: String,
    /// What was done, e.g. `slice.create`, `user.revoke`.
    pub action: String,
    /// What it was done to (a slice, user or host name).
    pub object: String,
    /// More, e.g. the revision or the new lease end.
    pub detail: String,
}

fn insert_audit(conn: &Connection, time: u64, a: &Audit) -> Result<(), rusqlite::Error> {
    conn.execute(
        "INSERT INTO audit (time, caller, role, action, object, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![time as i64, a.caller, a.role, a.action, a.object, a.detail],
    )?;
    Ok(())
}

fn write_host_revisions(conn: &Connection, host_revisions: &BTreeMap<String, u64>) -> Result<(), rusqlite::Error> {
    for (h, r) in host_revisions {
        conn.execute(
            "INSERT INTO host_revisions (host, revision) VALUES (?1, ?2)
             ON CONFLICT(host) DO UPDATE SET revision = excluded.revision",
            params![h, *r as i64],
        )?;
    }
    Ok(())
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { what: what.to_string(), detail: e.to_string() }
}

impl Store {
    /// Opens (creating and migrating as needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut s = Store { conn };
        s.migrate()?;
        Ok(s)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > MIGRATIONS.len() as i64 {
            return Err(StoreError::TooNew { found: version, known: MIGRATIONS.len() as i64 });
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(m)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
            tracing::info!("store migrated to schema {}", i + 1);
        }
        Ok(())
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    /// Sets a metadata value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// The stored substrate, if any.
    pub fn substrate(&self) -> Result<Option<Substrate>, StoreError> {
        match self.meta("substrate")? {
            Some(s) => serde_json::from_str(&s).map(Some).map_err(|e| corrupt("substrate", e)),
            None => Ok(None),
        }
    }

    /// Every slice.
    pub fn slices(&self) -> Result<BTreeMap<String, SliceRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT name, spec, plan, revision, created, owner, expires, deleting, plan_version FROM slices",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?),
                (r.get::<_, i64>(3)?, r.get::<_, i64>(4)?),
                (r.get::<_, String>(5)?, r.get::<_, i64>(6)?, r.get::<_, i64>(7)?, r.get::<_, i64>(8)?),
            ))
        })?;
        let mut out = BTreeMap::new();
        for row in rows {
            let ((name, spec, plan), (revision, created), (owner, expires, deleting, plan_version)) = row?;
            // The spec is stored as the document its owner wrote (JSON form).
            let spec: SliceSpec = netslice_model::parse_as(&spec, Some(netslice_model::Format::Json))
                .map_err(|e| corrupt(&format!("slice {name} spec"), e))?;
            let plan =
                records::decode_plan(plan_version, &plan).map_err(|e| corrupt(&format!("slice {name} plan"), e))?;
            out.insert(
                name,
                SliceRow {
                    spec,
                    plan,
                    revision: revision as u64,
                    created: created as u64,
                    owner,
                    expires: expires as u64,
                    deleting: deleting != 0,
                },
            );
        }
        Ok(out)
    }

    /// Desired revision of every host.
    pub fn host_revisions(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT host, revision FROM host_revisions")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (h, r) = row?;
            out.insert(h, r as u64);
        }
        Ok(out)
    }

    /// Adds an API token (its hash), with its audit record.
    pub fn add_token(&mut self, hash: &str, user: &str, role: &str, now: u64, audit: &Audit) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO tokens (hash, user, role, created) VALUES (?1, ?2, ?3, ?4)",
            params![hash, user, role, now as i64],
        )?;
        insert_audit(&tx, now, audit)?;
        tx.commit()?;
        Ok(())
    }

    /// The audit trail after record `after`, oldest first, at most `limit`
    /// records: `(id, time, record)`.
    pub fn audit(&self, after: u64, limit: usize) -> Result<Vec<(u64, u64, Audit)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, time, caller, role, action, object, detail FROM audit WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after.min(i64::MAX as u64) as i64, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, i64>(1)? as u64,
                Audit { caller: r.get(2)?, role: r.get(3)?, action: r.get(4)?, object: r.get(5)?, detail: r.get(6)? },
            ))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Every token, by hash.
    pub fn tokens(&self) -> Result<BTreeMap<String, TokenRow>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT hash, user, role FROM tokens")?;
        let rows =
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (h, user, role) = row?;
            out.insert(h, TokenRow { user, role });
        }
        Ok(out)
    }

    /// Removes every token of a user; the audit record is written only if
    /// there was one.
    pub fn remove_tokens(&mut self, user: &str, now: u64, audit: &Audit) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute("DELETE FROM tokens WHERE user = ?1", [user])?;
        if n > 0 {
            insert_audit(&tx, now, audit)?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Sets a host's agent credential (its hash), with its audit record.
    pub fn set_node_credential(&mut self, host: &str, hash: &str, now: u64, audit: &Audit) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO node_credentials (host, hash, issued) VALUES (?1, ?2, ?3)
             ON CONFLICT(host) DO UPDATE SET hash = excluded.hash, issued = excluded.issued",
            params![host, hash, now as i64],
        )?;
        insert_audit(&tx, now, audit)?;
        tx.commit()?;
        Ok(())
    }

    /// Every agent credential hash, by host.
    pub fn node_credentials(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT host, hash FROM node_credentials")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (h, c) = row?;
            out.insert(h, c);
        }
        Ok(out)
    }

    /// Every stored job record, by id: (version, JSON).
    pub fn jobs(&self) -> Result<BTreeMap<u64, (i64, String)>, StoreError> {
        let mut st = self.conn.prepare("SELECT id, version, record FROM jobs")?;
        let rows =
            st.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, (r.get::<_, i64>(1)?, r.get::<_, String>(2)?))))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (id, v) = row?;
            out.insert(id, v);
        }
        Ok(out)
    }

    /// Commits a change of jobs: a job to write (id, owner, slice, JSON), a
    /// job to delete, the next job id, new host revisions (their taps
    /// changed), the global revision and the audit record, all or nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn commit_jobs(
        &mut self,
        put: Option<(u64, &str, &str, &str)>,
        delete: Option<u64>,
        next_job: u64,
        host_revisions: &BTreeMap<String, u64>,
        revision: u64,
        audit: Option<(u64, &Audit)>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        if let Some((now, a)) = audit {
            insert_audit(&tx, now, a)?;
        }
        if let Some((id, owner, slice, record)) = put {
            tx.execute(
                "INSERT INTO jobs (id, owner, slice, version, record) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET record = excluded.record, version = excluded.version",
                params![id as i64, owner, slice, JOB_VERSION, record],
            )?;
        }
        if let Some(id) = delete {
            tx.execute("DELETE FROM jobs WHERE id = ?1", [id as i64])?;
        }
        write_host_revisions(&tx, host_revisions)?;
        for (k, v) in [("revision", revision), ("next_job", next_job)] {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![k, v.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Commits one change: slices to write, slices to delete, new host revisions,
    /// the global revision and the change's audit record, all or nothing.
    pub fn commit(
        &mut self,
        put: &[(&str, &SliceRow)],
        delete: &[&str],
        host_revisions: &BTreeMap<String, u64>,
        revision: u64,
        audit: Option<(u64, &Audit)>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        if let Some((now, a)) = audit {
            insert_audit(&tx, now, a)?;
        }
        for (name, row) in put {
            tx.execute(
                "INSERT INTO slices (name, spec, plan, revision, created, owner, expires, deleting, plan_version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, plan = excluded.plan,
                    plan_version = excluded.plan_version,
                    revision = excluded.revision, expires = excluded.expires, deleting = excluded.deleting",
                params![
                    name,
                    serde_json::to_string(&row.spec).expect("spec serializes"),
                    records::encode_plan(&row.plan),
                    row.revision as i64,
                    row.created as i64,
                    row.owner,
                    row.expires as i64,
                    i64::from(row.deleting),
                    records::PLAN_VERSION
                ],
            )?;
        }
        for name in delete {
            tx.execute("DELETE FROM slices WHERE name = ?1", [name])?;
        }
        write_host_revisions(&tx, host_revisions)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('revision', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [revision.to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_a_schema_1_store_and_refuses_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            // A store as the first release wrote it, with one slice.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            let spec = SliceSpec::from_text("name: red\nnodes:\n  - {name: a}\n").unwrap();
            conn.execute(
                "INSERT INTO slices (name, spec, plan, revision, created) VALUES ('red', ?1, ?2, 3, 100)",
                params![serde_json::to_string(&spec).unwrap(), serde_json::to_string(&SlicePlan::default()).unwrap()],
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        let rows = s.slices().unwrap();
        let red = &rows["red"];
        assert_eq!(
            (red.revision, red.created, red.owner.as_str(), red.expires, red.deleting),
            (3, 100, "admin", 0, false)
        );
        assert!(s.tokens().unwrap().is_empty());
        drop(s);
        Store::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let e = Store::open(&path).unwrap_err();
        assert!(matches!(e, StoreError::TooNew { found: 99, .. }), "{e}");
    }
}
