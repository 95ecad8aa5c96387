//! The manager's REST paths. Only the constructors here make one: names are
//! checked first (a name that is not a valid slice, user or host name is
//! refused with the rule it breaks, before any request exists), and every
//! segment is percent-encoded on top, so that no name can become another
//! path (`slice delete ../users/dave` can never reach `/api/v1/users/dave`; a
//! URL parser treats `..` and even `%2e%2e` as "up one level", so encoding
//! alone would not do).

use netslice_model::names::{self, NameError};

/// A path of the manager's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route(String);

/// Characters left as they are in a path segment: RFC 3986 unreserved, but `.`.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

/// `s` percent-encoded as one path segment.
pub fn segment(s: &str) -> percent_encoding::PercentEncode<'_> {
    percent_encoding::utf8_percent_encode(s, SEGMENT)
}

/// A name refused before any request was made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} name {error}")]
pub struct BadName {
    /// `slice`, `user` or `host`.
    pub kind: &'static str,
    /// The rule it breaks.
    pub error: NameError,
}

fn checked(kind: &'static str, name: &str, check: fn(&str) -> Result<(), NameError>) -> Result<(), BadName> {
    check(name).map_err(|error| BadName { kind, error })
}

impl Route {
    /// `/healthz`.
    pub fn healthz() -> Route {
        Route("/healthz".into())
    }

    /// `/openapi.json`.
    pub fn openapi() -> Route {
        Route("/openapi.json".into())
    }

    /// `/api/v1/whoami`.
    pub fn whoami() -> Route {
        Route("/api/v1/whoami".into())
    }

    /// `/api/v1/substrate`.
    pub fn substrate() -> Route {
        Route("/api/v1/substrate".into())
    }

    /// `/api/v1/substrate/usage`.
    pub fn usage() -> Route {
        Route("/api/v1/substrate/usage".into())
    }

    /// `/api/v1/types`.
    pub fn types() -> Route {
        Route("/api/v1/types".into())
    }

    /// `/api/v1/slices`.
    pub fn slices() -> Route {
        Route("/api/v1/slices".into())
    }

    /// `/api/v1/users`.
    pub fn users() -> Route {
        Route("/api/v1/users".into())
    }

    /// `/api/v1/nodes`.
    pub fn nodes() -> Route {
        Route("/api/v1/nodes".into())
    }

    /// `/api/v1/audit`.
    pub fn audit() -> Route {
        Route("/api/v1/audit".into())
    }

    /// `/api/v1/slices/{name}`, the name checked.
    pub fn slice(name: &str) -> Result<Route, BadName> {
        checked("slice", name, names::slice)?;
        Ok(Route(format!("/api/v1/slices/{}", segment(name))))
    }

    /// `/api/v1/slices/{name}/renew`, the name checked.
    pub fn renew(name: &str) -> Result<Route, BadName> {
        checked("slice", name, names::slice)?;
        Ok(Route(format!("/api/v1/slices/{}/renew", segment(name))))
    }

    /// `/api/v1/slices/{name}/stats`, the name checked.
    pub fn slice_stats(name: &str) -> Result<Route, BadName> {
        checked("slice", name, names::slice)?;
        Ok(Route(format!("/api/v1/slices/{}/stats", segment(name))))
    }

    /// `/api/v1/measurements`.
    pub fn measurements() -> Route {
        Route("/api/v1/measurements".into())
    }

    /// `/api/v1/measurements/{id}`.
    pub fn measurement(id: u64) -> Route {
        Route(format!("/api/v1/measurements/{id}"))
    }

    /// `/api/v1/measurements/{id}/capture`.
    pub fn capture(id: u64) -> Route {
        Route(format!("/api/v1/measurements/{id}/capture"))
    }

    /// `/api/v1/nodes/{host}/captures/{id}`, the host name checked.
    pub fn capture_upload(host: &str, id: u64) -> Result<Route, BadName> {
        checked("host", host, names::host)?;
        Ok(Route(format!("/api/v1/nodes/{}/captures/{id}", segment(host))))
    }

    /// `/api/v1/slices/{name}/check`, the name checked.
    pub fn slice_check(name: &str) -> Result<Route, BadName> {
        checked("slice", name, names::slice)?;
        Ok(Route(format!("/api/v1/slices/{}/check", segment(name))))
    }

    /// `/metrics` (the manager's Prometheus endpoint).
    pub fn metrics() -> Route {
        Route("/metrics".into())
    }

    /// `/api/v1/users/{name}`, the name checked.
    pub fn user(name: &str) -> Result<Route, BadName> {
        checked("user", name, names::user)?;
        Ok(Route(format!("/api/v1/users/{}", segment(name))))
    }

    /// `/api/v1/nodes/{host}/register`, the name checked.
    pub fn register(host: &str) -> Result<Route, BadName> {
        checked("host", host, names::host)?;
        Ok(Route(format!("/api/v1/nodes/{}/register", segment(host))))
    }

    /// `/api/v1/nodes/{host}/config`, the name checked.
    pub fn config(host: &str) -> Result<Route, BadName> {
        checked("host", host, names::host)?;
        Ok(Route(format!("/api/v1/nodes/{}/config", segment(host))))
    }

    /// `/api/v1/nodes/{host}/status`, the name checked.
    pub fn status(host: &str) -> Result<Route, BadName> {
        checked("host", host, names::host)?;
        Ok(Route(format!("/api/v1/nodes/{}/status", segment(host))))
    }

    /// The path.
    pub fn path(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_segments_encoded() {
        // The review's path tricks are refused before any request exists.
        let e = Route::slice("../users/dave").unwrap_err().to_string();
        assert!(e.contains("not a valid name"), "{e}");
        assert!(Route::user("../slices/x").is_err());
        assert!(Route::slice("../etc").is_err());
        assert!(Route::config("../slices").is_err());
        assert_eq!(Route::slice("red").unwrap().path(), "/api/v1/slices/red");
        assert_eq!(Route::renew("red-2").unwrap().path(), "/api/v1/slices/red-2/renew");
        assert_eq!(Route::user("Dave_1").unwrap().path(), "/api/v1/users/Dave_1");
        assert_eq!(Route::status("h1").unwrap().path(), "/api/v1/nodes/h1/status");
        assert_eq!(segment("../a b/%").to_string(), "%2E%2E%2Fa%20b%2F%25");
    }
}
