//! The admin API: HTTP on the `[admin]` address (127.0.0.1 by default).
//! Every endpoint but `/healthz` and `/readyz` requires
//! `Authorization: Bearer TOKEN`; a request without the valid token gets 401
//! and is logged (method, path, peer — never the token). Endpoints
//! (`docs/hot-swap.md` has examples):
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/healthz` | the process answers |
//! | GET | `/readyz` | every pipeline is running (503 while one starts or after one failed) |
//! | GET | `/status` | pipelines, stages, versions, last epoch, lag per partition |
//! | GET | `/metrics` | OpenMetrics text, as Prometheus scrapes it (`docs/metrics.md`) |
//! | POST | `/pipelines/P/stages/S/swap` | body: a `.wasm` component; `?shadow=N`, `cut_over=false`, `key=a,b`, `wait=60s` |
//! | POST | `/pipelines/P/stages/S/rollback` | back to the version before the last swap |
//! | GET | `/pipelines/P/stages/S/shadow` | the stage's shadow report |
//! | GET | `/pipelines/P/stages/S/history` | the stage's swaps, rollbacks and refusals |
//! | GET | `/deployments` | the pipeline files this process runs |
//! | POST | `/deployments?name=N` | body: a pipeline file; validated (every problem returned, 422), then started |
//! | DELETE | `/deployments/N` | stops a deployed file's pipelines after their current epoch |
//!
//! Requests are served one thread each (admin traffic is light, and a swap
//! compiles its component on the request's thread, off the processing path).

mod deploy;
mod routes;

pub use deploy::Deployments;

use crate::control::Control;
use crate::pipeline::model::Admin;
use std::sync::Arc;
use tiny_http::{Header, Response, Server};

/// Why the admin API could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The address cannot be listened on.
    #[error("admin API: cannot listen on {address}: {reason}")]
    Bind {
        /// The address.
        address: std::net::SocketAddr,
        /// Why.
        reason: String,
    },
}

/// A running admin API; stops listening when dropped.
pub struct AdminServer {
    server: Arc<Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    address: std::net::SocketAddr,
}

impl AdminServer {
    /// The address it listens on (the port is resolved when `:0` was asked for).
    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What every request handler can reach.
pub(crate) struct Shared {
    pub control: Arc<Control>,
    pub deployments: Arc<Deployments>,
    token: String,
}

/// Starts serving `admin` for the pipelines in `control` and `deployments`.
pub fn start(
    admin: &Admin,
    control: Arc<Control>,
    deployments: Arc<Deployments>,
) -> Result<AdminServer, AdminError> {
    let server = Server::http(admin.address).map_err(|e| AdminError::Bind {
        address: admin.address,
        reason: e.to_string(),
    })?;
    let address = server.server_addr().to_ip().unwrap_or(admin.address);
    let server = Arc::new(server);
    let shared = Arc::new(Shared {
        control,
        deployments,
        token: admin.token.clone(),
    });
    let listening = server.clone();
    let thread = std::thread::Builder::new()
        .name("weir-admin".into())
        .spawn(move || {
            for request in listening.incoming_requests() {
                let shared = shared.clone();
                let spawned = std::thread::Builder::new()
                    .name("weir-admin-request".into())
                    .spawn(move || serve(&shared, request));
                if let Err(error) = spawned {
                    tracing::warn!(%error, "admin API: cannot start a request thread");
                }
            }
        })
        .map_err(|e| AdminError::Bind {
            address: admin.address,
            reason: e.to_string(),
        })?;
    tracing::info!(%address, "admin API listening");
    Ok(AdminServer {
        server,
        thread: Some(thread),
        address,
    })
}

/// A response: status, JSON or text body.
pub(crate) struct Reply {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
}

impl Reply {
    pub fn json(status: u16, value: serde_json::Value) -> Self {
        Reply {
            status,
            body: serde_json::to_string_pretty(&value).expect("JSON values serialize") + "\n",
            content_type: "application/json",
        }
    }

    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Reply::json(status, serde_json::json!({ "error": message.into() }))
    }

    pub fn text(status: u16, body: String) -> Self {
        Reply {
            status,
            body,
            content_type: "text/plain; charset=utf-8",
        }
    }

    /// The metrics exposition (OpenMetrics text, which Prometheus scrapes).
    pub fn metrics(body: String) -> Self {
        Reply {
            status: 200,
            body,
            content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

fn serve(shared: &Shared, mut request: tiny_http::Request) {
    let method = request.method().to_string();
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let public = method == "GET" && (path == "/healthz" || path == "/readyz");
    let reply = if !public && !authorized(&request, &shared.token) {
        tracing::warn!(%method, %path, peer = ?request.remote_addr(),
            "admin API: refused a request without a valid bearer token (401)");
        let mut reply = Reply::error(
            401,
            "this endpoint needs the admin token: send `Authorization: Bearer TOKEN` (the token is in the variable or file the pipeline file's [admin] section names)",
        );
        reply.content_type = "application/json";
        reply
    } else {
        let mut body = Vec::new();
        match std::io::Read::read_to_end(
            &mut std::io::Read::take(request.as_reader(), routes::MAX_BODY),
            &mut body,
        ) {
            Ok(_) => routes::route(shared, &method, path, query, body),
            Err(e) => Reply::error(400, format!("cannot read the request body: {e}")),
        }
    };
    let mut response = Response::from_string(reply.body).with_status_code(reply.status);
    if let Ok(header) = Header::from_bytes("Content-Type", reply.content_type) {
        response.add_header(header);
    }
    if reply.status == 401
        && let Ok(header) = Header::from_bytes("WWW-Authenticate", "Bearer realm=\"weir\"")
    {
        response.add_header(header);
    }
    if let Err(error) = request.respond(response) {
        tracing::debug!(%error, "admin API: the client went away before the answer");
    }
}

/// Whether the request carries `Authorization: Bearer <token>` (compared in
/// constant time, so the answer's timing does not leak the token).
fn authorized(request: &tiny_http::Request, token: &str) -> bool {
    request
        .headers()
        .iter()
        .filter(|h| h.field.equiv("Authorization"))
        .filter_map(|h| h.value.as_str().strip_prefix("Bearer "))
        .any(|given| constant_time_eq(given.trim().as_bytes(), token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_compared_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
