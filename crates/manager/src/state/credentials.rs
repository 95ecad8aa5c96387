//! Credentials: users' API tokens, agents' node credentials and the
//! enrollment token, all kept as digests (the secrets are shown once and
//! never stored).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use netslice_api::types::UserInfo;
use netslice_model::FieldError;

use super::common::{ManagerError, audit, log_audit, unix_secs};
use crate::auth::{Principal, digest, new_secret};
use crate::store::{Audit, Store, TokenRow};

/// Names no user may take: they stand for the platform itself in the audit trail.
pub const RESERVED_USERS: &[&str] = &["system"];

/// What authentication looks at; published in every snapshot.
#[derive(Debug, Clone, Default)]
pub struct CredView {
    /// API tokens by digest.
    tokens: BTreeMap<String, TokenRow>,
    /// Agent credentials: digest -> host.
    nodes: BTreeMap<String, String>,
    /// Digest of the enrollment token.
    enroll: Option<String>,
}

impl CredView {
    /// Who holds `secret`, if anyone.
    pub fn authenticate(&self, secret: &str) -> Option<Principal> {
        let d = digest(secret);
        if let Some(t) = self.tokens.get(&d) {
            return Some(Principal::User { name: t.user.clone(), operator: t.role == "operator" });
        }
        self.nodes.get(&d).map(|h| Principal::Node(h.clone()))
    }

    /// Whether `secret` is the agent enrollment token.
    pub fn is_enrollment(&self, secret: &str) -> bool {
        self.enroll.as_deref() == Some(digest(secret).as_str())
    }

    /// Whether no user token exists yet.
    pub fn no_users(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Every user with a token, by name, with their role and number of tokens.
    pub fn users(&self) -> Vec<UserInfo> {
        let mut out: BTreeMap<&str, UserInfo> = BTreeMap::new();
        for t in self.tokens.values() {
            let u = out.entry(&t.user).or_insert_with(|| UserInfo {
                name: t.user.clone(),
                role: t.role.clone(),
                tokens: 0,
            });
            u.tokens += 1;
            if t.role == "operator" {
                u.role = t.role.clone();
            }
        }
        out.into_values().collect()
    }
}

/// The credentials part of the state.
#[derive(Debug, Default)]
pub(crate) struct Credentials {
    pub(crate) view: Arc<CredView>,
}

impl Credentials {
    /// Loads the stored tokens and agent credentials.
    pub(crate) fn load(store: &Store) -> Result<Credentials, ManagerError> {
        let tokens = store.tokens()?;
        let nodes = store.node_credentials()?.into_iter().map(|(h, d)| (d, h)).collect();
        Ok(Credentials { view: Arc::new(CredView { tokens, nodes, enroll: None }) })
    }

    /// Sets the agent enrollment secret (agents present it to register).
    pub(crate) fn set_enrollment(&mut self, secret: &str) {
        Arc::make_mut(&mut self.view).enroll = Some(digest(secret));
    }

    /// Creates a user token (operators only, or the bootstrap when `who` is
    /// None and no token exists yet). Returns the secret, shown this once.
    pub(crate) fn add_user(
        &mut self,
        store: &mut Store,
        now: SystemTime,
        name: &str,
        operator: bool,
        who: Option<&Principal>,
    ) -> Result<String, ManagerError> {
        match who {
            Some(p) if p.is_operator() => {}
            Some(_) => return Err(ManagerError::Forbidden("only operators add users".into())),
            None if self.view.tokens.is_empty() => {}
            None => return Err(ManagerError::Unauthorized("a token is needed".into())),
        }
        let mut errs = Vec::new();
        if let Err(e) = netslice_model::names::user(name) {
            errs.push(FieldError::new("name", e.0));
        }
        if RESERVED_USERS.contains(&name) {
            errs.push(FieldError::new("name", format!("{name:?} is reserved for the platform itself")));
        }
        if !errs.is_empty() {
            return Err(ManagerError::Invalid { what: "user", errors: errs });
        }
        let secret = new_secret();
        let role = if operator { "operator" } else { "developer" };
        let a = audit(who.unwrap_or(&Principal::system()), "user.add", name, format!("role {role}, new token"));
        let d = digest(&secret);
        store.add_token(&d, name, role, unix_secs(now), &a)?;
        log_audit(&a);
        Arc::make_mut(&mut self.view).tokens.insert(d, TokenRow { user: name.to_string(), role: role.to_string() });
        Ok(secret)
    }

    /// Revokes every token of a user (operators only).
    pub(crate) fn revoke_user(
        &mut self,
        store: &mut Store,
        now: SystemTime,
        name: &str,
        who: &Principal,
    ) -> Result<usize, ManagerError> {
        if !who.is_operator() {
            return Err(ManagerError::Forbidden("only operators revoke users".into()));
        }
        if !self.view.tokens.values().any(|t| t.user == name) {
            return Err(ManagerError::NotFound(format!("no user named {name:?}")));
        }
        let a = audit(who, "user.revoke", name, "every token");
        let n = store.remove_tokens(name, unix_secs(now), &a)?;
        Arc::make_mut(&mut self.view).tokens.retain(|_, t| t.user != name);
        log_audit(&Audit { detail: format!("{n} token(s)"), ..a });
        Ok(n)
    }

    /// An agent registers with the enrollment secret and receives a
    /// credential of its own (replacing any earlier one). The host must exist
    /// (checked by the caller).
    pub(crate) fn enroll(
        &mut self,
        store: &mut Store,
        now: SystemTime,
        host: &str,
        secret: &str,
    ) -> Result<String, ManagerError> {
        if !self.view.is_enrollment(secret) {
            return Err(ManagerError::Unauthorized("wrong enrollment token".into()));
        }
        let cred = new_secret();
        let d = digest(&cred);
        let a = audit(&Principal::Node(host.to_string()), "node.enroll", host, "new agent credential");
        store.set_node_credential(host, &d, unix_secs(now), &a)?;
        log_audit(&a);
        let view = Arc::make_mut(&mut self.view);
        view.nodes.retain(|_, h| h != host);
        view.nodes.insert(d, host.to_string());
        Ok(cred)
    }
}
