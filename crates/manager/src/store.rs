//! The manager's store: SQLite in WAL mode, with versioned migrations.
//!
//! Every change of slices and host revisions is one transaction, so a crash at any
//! point leaves either the old or the new state, never half of one.

use std::collections::BTreeMap;
use std::path::Path;

use netslice_model::api::SlicePlan;
use netslice_model::{SliceSpec, Substrate};
use rusqlite::{Connection, OptionalExtension, params};

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
];

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
        let mut stmt = self.conn.prepare("SELECT name, spec, plan, revision, created FROM slices")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (name, spec, plan, revision, created) = row?;
            let spec: SliceSpec = serde_json::from_str(&spec).map_err(|e| corrupt(&format!("slice {name} spec"), e))?;
            let plan: SlicePlan = serde_json::from_str(&plan).map_err(|e| corrupt(&format!("slice {name} plan"), e))?;
            out.insert(name, SliceRow { spec, plan, revision: revision as u64, created: created as u64 });
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

    /// Commits one change: slices to write, slices to delete, new host revisions,
    /// and the global revision, all or nothing.
    pub fn commit(
        &mut self,
        put: &[(&str, &SliceRow)],
        delete: &[&str],
        host_revisions: &BTreeMap<String, u64>,
        revision: u64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for (name, row) in put {
            tx.execute(
                "INSERT INTO slices (name, spec, plan, revision, created) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, plan = excluded.plan, revision = excluded.revision",
                params![
                    name,
                    serde_json::to_string(&row.spec).expect("spec serializes"),
                    serde_json::to_string(&row.plan).expect("plan serializes"),
                    row.revision as i64,
                    row.created as i64
                ],
            )?;
        }
        for name in delete {
            tx.execute("DELETE FROM slices WHERE name = ?1", [name])?;
        }
        for (h, r) in host_revisions {
            tx.execute(
                "INSERT INTO host_revisions (host, revision) VALUES (?1, ?2)
                 ON CONFLICT(host) DO UPDATE SET revision = excluded.revision",
                params![h, *r as i64],
            )?;
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('revision', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [revision.to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }
}
