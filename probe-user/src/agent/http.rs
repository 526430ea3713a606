//! The agent's HTTP API (axum): `/metrics`, `/v1/processes`, `/v1/processes/{pid}`,
//! `/healthz`.

use std::sync::{Arc, Mutex};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::Shared;

#[derive(Clone)]
struct AppState {
    shared: Arc<Mutex<Shared>>,
    registry: Arc<Registry>,
}

/// OpenMetrics text to the Prometheus text format 0.0.4: counter families are named with
/// their `_total` suffix, and the `# UNIT` and `# EOF` lines go. Scrapers that do not ask for
/// OpenMetrics (and tools like `promtool check metrics`) get this.
fn to_prometheus_text(om: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                counters.insert(name.to_owned());
            }
        }
    }
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let fixed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(fixed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

async fn metrics(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let mut body = String::new();
    if prometheus_client::encoding::text::encode(&mut body, &s.registry).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "encoding metrics failed\n").into_response();
    }
    let openmetrics = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/openmetrics-text"));
    if openmetrics {
        ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], to_prometheus_text(&body)).into_response()
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn processes(State(s): State<AppState>) -> Response {
    let sh = s.shared.lock().expect("agent state lock");
    let list: Vec<_> = sh.procs.values().map(|e| &e.summary).collect();
    Json(json!(list)).into_response()
}

async fn process(State(s): State<AppState>, Path(pid): Path<String>) -> Response {
    let Ok(pid) = pid.parse::<u32>() else {
        return error(StatusCode::BAD_REQUEST, format!("not a pid: {pid:?}"));
    };
    let sh = s.shared.lock().expect("agent state lock");
    match sh.procs.get(&pid) {
        Some(e) => Json(json!(e.summary)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("pid {pid} is not watched")),
    }
}

async fn signals(State(s): State<AppState>) -> Response {
    let sh = s.shared.lock().expect("agent state lock");
    let list: Vec<_> = sh
        .procs
        .values()
        .filter_map(|e| e.summary.signal.as_ref().map(|sig| json!({ "pid": e.labels.pid, "comm": e.labels.comm, "signal": sig })))
        .collect();
    Json(json!(list)).into_response()
}

async fn signal(State(s): State<AppState>, Path(pid): Path<String>) -> Response {
    let Ok(pid) = pid.parse::<u32>() else {
        return error(StatusCode::BAD_REQUEST, format!("not a pid: {pid:?}"));
    };
    let sh = s.shared.lock().expect("agent state lock");
    match sh.procs.get(&pid) {
        Some(e) => match &e.summary.signal {
            Some(sig) => Json(json!({ "pid": pid, "comm": e.labels.comm, "signal": sig })).into_response(),
            None => error(StatusCode::NOT_FOUND, format!("no signal for pid {pid} yet (one interval)")),
        },
        None => error(StatusCode::NOT_FOUND, format!("pid {pid} is not watched")),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Mutex<Shared>>, cancel: CancellationToken) {
    let state = AppState { registry: Arc::new(super::metrics::registry(shared.clone())), shared };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/processes", get(processes))
        .route("/v1/processes/{pid}", get(process))
        .route("/v1/signals", get(signals))
        .route("/v1/signals/{pid}", get(signal))
        .route("/healthz", get(healthz))
        .with_state(state);
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { cancel.cancelled().await }).await {
        log::error!("HTTP server: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_their_total_names() {
        let om = "# HELP a_x Help.\n# TYPE a_x counter\na_x_total 3\n# HELP g G.\n# TYPE g gauge\ng 1\n# EOF\n";
        assert_eq!(to_prometheus_text(om), "# HELP a_x_total Help.\n# TYPE a_x_total counter\na_x_total 3\n# HELP g G.\n# TYPE g gauge\ng 1\n");
    }
}
