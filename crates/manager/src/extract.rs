//! What a request carries, read within bounds and refused in the API's error
//! format: bodies ([`Document`]), query strings ([`ApiQuery`]) and the names
//! in paths ([`SliceName`], [`UserName`], [`HostName`]).
//!
//! A body is bounded in size (1 MiB, refused from `Content-Length` before a
//! byte is read), in time (it must arrive within [`BODY_TIMEOUT`]: a client
//! sending a byte a second gets a 408, not a connection held open) and in
//! shape (the bounded parse of `netslice_model::document`, run on the blocking
//! pool so that a large document never holds up the async workers that serve
//! everyone else). JSON bodies (by `Content-Type`, or by their first
//! character) are parsed as JSON, YAML as YAML.

use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use netslice_model::document::LIMITS;
use netslice_model::{FieldError, Format, SpecError};
use serde::de::DeserializeOwned;

use crate::state::ManagerError;

/// How long a request body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Most documents parsed at once (on the blocking pool): as many as there are
/// cores, so that parsing can never take every core from the async workers.
fn parse_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS
        .get_or_init(|| tokio::sync::Semaphore::new(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)))
}

/// A document the API accepts as a request body.
pub trait Body: DeserializeOwned + Send + 'static {
    /// What it is called in errors ("slice spec", "renew request").
    const WHAT: &'static str;

    /// The value of an empty body, where one is allowed.
    fn empty() -> Option<Self> {
        None
    }
}

impl Body for netslice_model::SliceSpec {
    const WHAT: &'static str = "slice spec";
}

impl Body for netslice_model::api::NodeReport {
    const WHAT: &'static str = "report";
}

impl Body for netslice_model::api::RegisterRequest {
    const WHAT: &'static str = "registration";
}

fn invalid(what: &'static str, field: &str, message: impl Into<String>) -> ManagerError {
    ManagerError::Invalid { what, errors: vec![FieldError::new(field, message)] }
}

/// A request body, parsed as `T` within [`LIMITS`] and [`BODY_TIMEOUT`].
#[derive(Debug)]
pub struct Document<T>(pub T);

impl<T: Body, S: Send + Sync> FromRequest<S> for Document<T> {
    type Rejection = ManagerError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let max = LIMITS.max_bytes;
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(n) = declared
            && n > max as u64
        {
            return Err(ManagerError::TooLarge(format!("the {} is {n} bytes, more than the {max} allowed", T::WHAT)));
        }
        let format = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(Format::from_media_type);
        let body = req.into_body();
        let bytes = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, max)).await {
            Err(_) => {
                return Err(ManagerError::Timeout(format!(
                    "the {} did not arrive within {}s",
                    T::WHAT,
                    BODY_TIMEOUT.as_secs()
                )));
            }
            Ok(Err(e)) => {
                let limit = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                    || e.to_string().contains("length limit");
                return Err(if limit {
                    ManagerError::TooLarge(format!("the {} is more than the {max} bytes allowed", T::WHAT))
                } else {
                    invalid(T::WHAT, "", format!("reading the body: {e}"))
                });
            }
            Ok(Ok(b)) => b,
        };
        let text = String::from_utf8(bytes.to_vec()).map_err(|e| {
            invalid(T::WHAT, "", format!("the body is not UTF-8 text (byte {})", e.utf8_error().valid_up_to()))
        })?;
        if text.trim().is_empty()
            && let Some(v) = T::empty()
        {
            return Ok(Document(v));
        }
        let _slot = parse_slots().acquire().await.map_err(|e| ManagerError::Internal(e.to_string()))?;
        let parsed = tokio::task::spawn_blocking(move || netslice_model::parse_as::<T>(&text, format))
            .await
            .map_err(|e| ManagerError::Internal(format!("parsing a {} failed: {e}", T::WHAT)))?;
        parsed.map(Document).map_err(|e: SpecError| ManagerError::Invalid { what: T::WHAT, errors: e.errors })
    }
}

/// Most bytes of one capture upload: the API's body limit (agents send
/// larger captures in several).
pub const MAX_UPLOAD: usize = netslice_api::MAX_UPLOAD;

/// A binary request body (an agent's capture upload), at most [`MAX_UPLOAD`]
/// bytes, arriving within [`BODY_TIMEOUT`].
#[derive(Debug)]
pub struct Upload(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for Upload {
    type Rejection = ManagerError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(req.into_body(), MAX_UPLOAD)).await {
            Err(_) => {
                Err(ManagerError::Timeout(format!("the upload did not arrive within {}s", BODY_TIMEOUT.as_secs())))
            }
            Ok(Err(e)) => {
                Err(ManagerError::TooLarge(format!("the upload is more than the {MAX_UPLOAD} bytes allowed ({e})")))
            }
            Ok(Ok(b)) => Ok(Upload(b)),
        }
    }
}

/// A query string parsed as `T`; unknown parameters are refused (a typo such
/// as `?dryrun=true` must not apply a spec for real).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ManagerError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." { String::new() } else { field };
            invalid("query", &field, e.into_inner().to_string())
        })
    }
}

async fn segment<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<String, ManagerError> {
    // Paths with several parameters name the first one.
    match Path::<Vec<String>>::from_request_parts(parts, state).await {
        Ok(Path(v)) => v.into_iter().next().ok_or_else(|| invalid("path", "", "a name is missing from the path")),
        Err(e) => Err(invalid("path", "", e.body_text())),
    }
}

macro_rules! name_extractor {
    ($(#[$doc:meta])* $name:ident, $field:literal, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub String);

        impl<S: Send + Sync> FromRequestParts<S> for $name {
            type Rejection = ManagerError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
                let v = segment(parts, state).await?;
                $check(&v).map_err(|e| invalid("path", $field, e.0))?;
                Ok($name(v))
            }
        }
    };
}

name_extractor!(
    /// The slice named in the path, checked to be a slice name.
    SliceName,
    "name",
    netslice_model::names::slice
);
name_extractor!(
    /// The user named in the path, checked to be a user name.
    UserName,
    "name",
    netslice_model::names::user
);
name_extractor!(
    /// The host named in the path, checked to be a host name.
    HostName,
    "host",
    netslice_model::names::host
);

/// The measurement job named in the path: its number.
#[derive(Debug, Clone, Copy)]
pub struct JobId(pub u64);

impl<S: Send + Sync> FromRequestParts<S> for JobId {
    type Rejection = ManagerError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // The job is the last parameter (`/nodes/{host}/captures/{id}`).
        let v = match Path::<Vec<String>>::from_request_parts(parts, state).await {
            Ok(Path(v)) => v.into_iter().next_back().ok_or_else(|| invalid("path", "", "the job id is missing"))?,
            Err(e) => return Err(invalid("path", "", e.body_text())),
        };
        v.parse::<u64>().map(JobId).map_err(|_| invalid("path", "id", format!("{v:?} is not a job id (a number)")))
    }
}

/// Most of a request body read and thrown away after an early answer.
pub const LINGER_BYTES: usize = 4 << 20;
/// Longest time spent reading it.
pub const LINGER_TIME: Duration = Duration::from_secs(2);

/// A request body that the handler and [`linger`] read in turn.
struct SharedBody(std::sync::Arc<std::sync::Mutex<axum::body::Body>>);

impl http_body::Body for SharedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let mut b = self.0.lock().expect("body lock");
        std::pin::Pin::new(&mut *b).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.lock().expect("body lock").is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.lock().expect("body lock").size_hint()
    }
}

/// Reads what is left of a request body after the answer is ready ("lingering
/// close", as nginx does): a request refused before its body was read (a bad
/// query, a missing token, a declared size over the limit) would otherwise
/// be answered on a connection closed while the client still sends, and many
/// clients then see a reset instead of the answer. At most [`LINGER_BYTES`]
/// and [`LINGER_TIME`], beside the answer, which is not delayed; past either
/// the connection is closed.
pub async fn linger(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let shared = std::sync::Arc::new(std::sync::Mutex::new(body));
    let req = Request::from_parts(parts, axum::body::Body::new(SharedBody(shared.clone())));
    let resp = next.run(req).await;
    if resp.status() == axum::http::StatusCode::REQUEST_TIMEOUT
        || http_body::Body::is_end_stream(&*shared.lock().expect("body lock"))
    {
        return resp;
    }
    // The answer goes out at once; the rest of the body is read beside it.
    tokio::spawn(async move {
        let drain = async {
            let mut seen = 0usize;
            loop {
                let frame = std::future::poll_fn(|cx| {
                    let mut b = shared.lock().expect("body lock");
                    http_body::Body::poll_frame(std::pin::Pin::new(&mut *b), cx)
                })
                .await;
                match frame {
                    Some(Ok(f)) => {
                        seen += f.data_ref().map(|d| d.len()).unwrap_or(0);
                        if seen > LINGER_BYTES {
                            return;
                        }
                    }
                    _ => return,
                }
            }
        };
        // Past the limits the body is dropped, and the connection closes.
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    });
    resp
}
