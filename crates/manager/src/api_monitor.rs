//! The NW Monitoring Manager's routes: a slice's figures (`stats`), the
//! guarantee check (`check`), the manager's Prometheus endpoint, and
//! measurement jobs (create, list, show, delete, the capture's download and
//! the agents' capture uploads). Authorised like slices: a developer reads
//! and measures their own slices; operators everything.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use netslice_api::types::{
    CaptureStored, CheckQuery, MeasureInfo, MeasureQuery, MeasureRequest, Problem, SliceCheck, SliceStats,
};
use netslice_model::FieldError;

use crate::caller::{ApiResult, App, Caller, NoQuery, node, operator, person};
use crate::extract::{ApiQuery, Body, Document, HostName, JobId, SliceName, Upload};
use crate::owner::Lane;
use crate::state::ManagerError;

/// A slice's figures: per virtual link, direction and hop (in path order),
/// frames, bytes and drops in all (carried across agent restarts), rates
/// over each host's last report interval, and what waits in its queues.
#[utoipa::path(get, path = "/api/v1/slices/{name}/stats", tag = "slices", operation_id = "getSliceStats", security(("bearer" = [])),
    params(("name" = String, Path, description = "slice name")),
    responses((status = 200, body = SliceStats),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn slice_stats(
    AxState(app): AxState<App>,
    c: Caller,
    SliceName(name): SliceName,
    _: ApiQuery<NoQuery>,
) -> ApiResult<Json<SliceStats>> {
    let who = person(&c)?.clone();
    Ok(Json(app.snapshot().slice_stats(SystemTime::now(), &name, &who)?))
}

/// The guarantee check of a slice: per virtual link, direction and
/// one-second window, offered and delivered load, drops by hop and reason,
/// and whether the guarantee was met (delivered >= min(offered, guaranteed)
/// within the operator's tolerance); where it was not, what the hops say.
#[utoipa::path(get, path = "/api/v1/slices/{name}/check", tag = "slices", operation_id = "checkSlice", security(("bearer" = [])),
    params(("name" = String, Path, description = "slice name"), CheckQuery),
    responses((status = 200, body = SliceCheck),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn check_slice(
    AxState(app): AxState<App>,
    c: Caller,
    SliceName(name): SliceName,
    ApiQuery(q): ApiQuery<CheckQuery>,
) -> ApiResult<Json<SliceCheck>> {
    let who = person(&c)?.clone();
    Ok(Json(app.snapshot().slice_check(SystemTime::now(), &name, &who, q.since)?))
}

/// Prometheus metrics of the whole platform (operators only): every
/// virtual link's counters per host, slices and hosts by state,
/// admissions, API latency. OpenMetrics for scrapers that ask for it, the
/// text format 0.0.4 otherwise.
#[utoipa::path(get, path = "/metrics", tag = "meta", operation_id = "metrics", security(("bearer" = [])),
    responses((status = 200, description = "the metrics", content_type = "text/plain", body = String),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn metrics(
    AxState(app): AxState<App>,
    c: Caller,
    _: ApiQuery<NoQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    operator(&c, "read the platform's metrics")?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (ct, body) = netslice_api::metrics::exposition(app.metrics.registry(), accept);
    Ok(([(header::CONTENT_TYPE, ct)], body).into_response())
}

impl Body for MeasureRequest {
    const WHAT: &'static str = "measurement job";
}

/// Creates a measurement job on a slice the caller may see: its points are
/// resolved, its filter compiled (libpcap's error names what is wrong), and
/// each point's host gets a tap for the window. 201 with the job and `Location`.
#[utoipa::path(post, path = "/api/v1/measurements", tag = "measurements", operation_id = "createMeasurement", security(("bearer" = [])),
    request_body(content = MeasureRequest, description = "the job"),
    responses((status = 201, body = MeasureInfo, headers(("Location" = String, description = "the new job"))),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 408, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn create_measurement(
    AxState(app): AxState<App>,
    c: Caller,
    _: ApiQuery<NoQuery>,
    Document(req): Document<MeasureRequest>,
) -> ApiResult<Response> {
    let who = person(&c)?.clone();
    netslice_model::names::slice(&req.slice)
        .map_err(|e| ManagerError::Invalid { what: "measurement job", errors: vec![FieldError::new("slice", e.0)] })?;
    let w = who.clone();
    let (r, snap) = app.manager.call(Lane::Slow, move |s, now| s.create_job(now, &req, &w)).await?;
    let id = r?;
    let info = snap.job_info(SystemTime::now(), id, &who)?;
    let loc = netslice_api::Route::measurement(id).path().to_string();
    Ok((StatusCode::CREATED, [(header::LOCATION, loc)], Json(info)).into_response())
}

/// The measurement jobs the caller may see, with their results so far.
#[utoipa::path(get, path = "/api/v1/measurements", tag = "measurements", operation_id = "listMeasurements", security(("bearer" = [])),
    params(MeasureQuery),
    responses((status = 200, body = Vec<MeasureInfo>),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_measurements(
    AxState(app): AxState<App>,
    c: Caller,
    ApiQuery(q): ApiQuery<MeasureQuery>,
) -> ApiResult<Json<Vec<MeasureInfo>>> {
    let who = person(&c)?.clone();
    Ok(Json(app.snapshot().job_list(SystemTime::now(), &who, q.slice.as_deref())))
}

/// One measurement job: its points, state and results (per interval, and
/// the loss between two points).
#[utoipa::path(get, path = "/api/v1/measurements/{id}", tag = "measurements", operation_id = "getMeasurement", security(("bearer" = [])),
    params(("id" = u64, Path, description = "job id")),
    responses((status = 200, body = MeasureInfo),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_measurement(
    AxState(app): AxState<App>,
    c: Caller,
    JobId(id): JobId,
    _: ApiQuery<NoQuery>,
) -> ApiResult<Json<MeasureInfo>> {
    let who = person(&c)?.clone();
    Ok(Json(app.snapshot().job_info(SystemTime::now(), id, &who)?))
}

/// Deletes a measurement job and its results (a running one stops).
#[utoipa::path(delete, path = "/api/v1/measurements/{id}", tag = "measurements", operation_id = "deleteMeasurement", security(("bearer" = [])),
    params(("id" = u64, Path, description = "job id")),
    responses((status = 204, description = "deleted"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn delete_measurement(
    AxState(app): AxState<App>,
    c: Caller,
    JobId(id): JobId,
    _: ApiQuery<NoQuery>,
) -> ApiResult<StatusCode> {
    let who = person(&c)?.clone();
    let (r, _) = app.manager.call(Lane::Slow, move |s, now| s.delete_job(now, id, &who)).await?;
    r?;
    Ok(StatusCode::NO_CONTENT)
}

/// A job's capture as a pcapng file: a Section Header, one Interface
/// Description (the point, its host and link; nanosecond timestamps), and
/// the frames the agent captured, as the slice saw them. Streamed.
#[utoipa::path(get, path = "/api/v1/measurements/{id}/capture", tag = "measurements", operation_id = "getMeasurementCapture", security(("bearer" = [])),
    params(("id" = u64, Path, description = "job id")),
    responses((status = 200, description = "the capture", content_type = "application/x-pcapng", body = Vec<u8>),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_capture(
    AxState(app): AxState<App>,
    c: Caller,
    JobId(id): JobId,
    _: ApiQuery<NoQuery>,
) -> ApiResult<Response> {
    let who = person(&c)?.clone();
    let (info, path, bytes) = app.snapshot().capture(SystemTime::now(), id, &who)?;
    let mut head = Vec::new();
    netslice_wire::pcapng::section_header(&mut head, concat!("netslice ", env!("CARGO_PKG_VERSION")));
    let p = info.points.first();
    let snaplen = info.request.snaplen.unwrap_or(crate::state::jobs::DEFAULT_SNAPLEN);
    netslice_wire::pcapng::interface(
        &mut head,
        snaplen,
        p.map(|p| p.point.as_str()).unwrap_or(""),
        &format!(
            "netslice job {id}: slice {} link {} at host {} (point {})",
            info.request.slice,
            p.map(|p| p.link.as_str()).unwrap_or(""),
            p.map(|p| p.host.as_str()).unwrap_or(""),
            p.map(|p| p.point.as_str()).unwrap_or("")
        ),
    );
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(ManagerError::Internal(format!("reading the capture: {e}"))),
    };
    // The blocks as stored, in 64 KiB reads, up to the size recorded (an
    // upload being appended is not read half-way).
    let rest = futures_util::stream::unfold((file, bytes), |(file, left)| async move {
        use tokio::io::AsyncReadExt;
        let mut f = file?;
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; left.min(64 << 10) as usize];
        match f.read_exact(&mut buf).await {
            Ok(_) => {
                let n = buf.len() as u64;
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), (Some(f), left - n)))
            }
            Err(e) => Some((Err(e), (None, 0))),
        }
    });
    let body = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(axum::body::Bytes::from(head)) }),
        rest,
    );
    let name = format!("attachment; filename=\"netslice-job-{id}.pcapng\"");
    Ok((
        [(header::CONTENT_TYPE, "application/x-pcapng".to_string()), (header::CONTENT_DISPOSITION, name)],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// An agent uploads what its tap captured for a job (Enhanced Packet
/// Blocks); the manager keeps what fits under the job's cap.
#[utoipa::path(post, path = "/api/v1/nodes/{host}/captures/{id}", tag = "nodes", operation_id = "uploadCapture", security(("bearer" = [])),
    params(("host" = String, Path, description = "host name"), ("id" = u64, Path, description = "job id")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "pcapng Enhanced Packet Blocks of interface 0"),
    responses((status = 200, body = CaptureStored),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 408, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn upload_capture(
    AxState(app): AxState<App>,
    c: Caller,
    HostName(host): HostName,
    JobId(id): JobId,
    _: ApiQuery<NoQuery>,
    Upload(data): Upload,
) -> ApiResult<Json<CaptureStored>> {
    // The blocks are checked before the caller (as every body is): what is
    // not a run of Enhanced Packet Blocks is refused whoever sends it.
    crate::state::check_capture_blocks(&data)?;
    node(&c, &host)?;
    let (r, _) = app.manager.call(Lane::Fast, move |s, now| s.append_capture(now, &host, id, &data)).await?;
    let (kept, left_out) = r?;
    Ok(Json(CaptureStored { kept, left_out }))
}
