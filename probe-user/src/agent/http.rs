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

async fn metrics(State(s): State<AppState>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding metrics failed\n").into_response(),
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

async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Mutex<Shared>>, cancel: CancellationToken) {
    let state = AppState { registry: Arc::new(super::metrics::registry(shared.clone())), shared };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/processes", get(processes))
        .route("/v1/processes/{pid}", get(process))
        .route("/healthz", get(healthz))
        .with_state(state);
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { cancel.cancelled().await }).await {
        log::error!("HTTP server: {e}");
    }
}
