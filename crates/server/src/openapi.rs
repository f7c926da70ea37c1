//! The OpenAPI document of the JSON API, generated from the handlers' `#[utoipa::path]`
//! annotations and the types' `ToSchema` derives (utoipa; the routes are registered
//! through `utoipa_axum`, so a route cannot be served without being described).
//!
//! Served at `GET /api/openapi.json`, printed by `anycode openapi`, and checked in as
//! `docs/openapi.json` (the test `openapi_document_is_current` fails when they differ;
//! `UPDATE_OPENAPI=1 cargo test -p anycode-server --test openapi` rewrites it).

use crate::error::ErrorBody;
use std::sync::OnceLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::{IntoResponses, Modify, OpenApi as _};

/// What every API description says before the paths.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "AnyCode API",
        description = "Runs coding agents in one Docker sandbox per task and git branch.\n\n\
Every /api and /ws request needs the access token: `Authorization: Bearer <token>` (the token is the file `token` in the data dir), or the session cookie that `GET /login?code=<one-time code>` sets (codes from `POST /api/login-code`; the token never goes in a URL). \
Requests whose Host is not an allowed host are refused (403 HOST_NOT_ALLOWED); WebSocket upgrades and non-GET requests from a foreign Origin are refused (403 ORIGIN_NOT_ALLOWED). \
Phones paired on the local network (LAN mode, off by default) use a device session cookie (`anycode_device`, set by POST /api/pair) with a role: `watch` devices get 403 WATCH_ONLY on every non-GET request and their terminal input and resize frames are dropped; no device may use /api/pairing, /api/devices, /api/lan, /api/login-code, /api/credentials/{name} or /api/github/token, nor add, import or remove projects (403 OWNER_ONLY).\n\n\
Errors are a status code and `{\"error\": {\"code\", \"message\"}}` (schema `ErrorBody`): 400/415 for a body that is not the JSON asked for, 401 without a session, 403 as above, 404 for unknown ids, 409 when the state does not allow the request, 422 for invalid values, 503 when a service AnyCode needs is unavailable (Docker, the OS keyring, GitHub) with the fix in the message. A 500 is a bug.\n\n\
The WebSockets are not described here: `WS /ws/terminals/{id}` (binary frames for bytes, text frames for control; see docs/terminal-protocol.md) and `WS /ws/events` (the task events as JSON: a snapshot `{\"type\":\"snapshot\",\"tasks\":[Task]}`, then `{\"type\":\"task\",\"task\":Task}` and `{\"type\":\"task_deleted\",\"id\"}`). \
Neither is the agent hook service (`POST /hooks/claude`), served only on the connections a sandbox's relay carries.\n\n\
This document is generated from the server's code (utoipa); do not edit docs/openapi.json by hand.",
        license(name = "MIT"),
    ),
    servers((url = "http://127.0.0.1:7878")),
    security(("bearer" = []), ("session" = []), ("device" = [])),
    // Schemas only parameters name (utoipa collects those of bodies and answers).
    components(schemas(ErrorBody, anycode_engine::CredentialName)),
    modifiers(&Common),
)]
pub(crate) struct ApiDoc;

/// The security schemes, and the answers every route can give before its handler
/// runs (401 without a session, 403 for a foreign Host or Origin or a device's role).
struct Common;

/// The WebSockets, which OpenAPI cannot describe: `x-websockets` (from
/// `websockets.json`, next to this file).
const WEBSOCKETS: &str = include_str!("websockets.json");

impl Modify for Common {
    fn modify(&self, doc: &mut OpenApi) {
        if let Ok(ws) = serde_json::from_str::<serde_json::Value>(WEBSOCKETS) {
            let mut ext = utoipa::openapi::extensions::Extensions::default();
            ext.insert("x-websockets".into(), ws);
            doc.extensions.get_or_insert_with(Default::default).merge(ext);
        }
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("The access token (the file `token` in the data dir).")).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description("anycode_session", "Set by GET /login?code=… (a one-time login code)."))),
        );
        components.add_security_scheme(
            "device",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description("anycode_device", "A paired device's session, set by POST /api/pair."))),
        );
    }
}

/// Adds the answers of the auth layer to every operation that lacks them.
fn add_auth_answers(doc: &mut OpenApi) {
    let auth = AuthErrors::responses();
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for op in ops.into_iter().flatten() {
            for (code, resp) in &auth {
                // `POST /api/pair` needs no session: only the Host and Origin checks apply.
                if path == "/api/pair" && code == "401" {
                    continue;
                }
                op.responses.responses.entry(code.clone()).or_insert_with(|| resp.clone());
            }
        }
    }
}

/// 401 and 403 from the auth layer.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum AuthErrors {
    /// `UNAUTHORIZED`: no valid token, session or device cookie.
    #[response(status = 401, description = "UNAUTHORIZED: no access token, session or device cookie, or a revoked device")]
    Unauthorized(ErrorBody),
    /// A foreign Host or Origin, or a device's role.
    #[response(
        status = 403,
        description = "HOST_NOT_ALLOWED, ORIGIN_NOT_ALLOWED, OWNER_ONLY (a paired device on an owner-only route) or WATCH_ONLY (a watch device changing something)"
    )]
    Forbidden(ErrorBody),
}

/// Answers of a JSON request body that is not the JSON asked for.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum JsonErrors {
    /// Not JSON or the wrong shape.
    #[response(status = 400, description = "INVALID_JSON: the body is not JSON of the shape asked for (the message says which field)")]
    BadJson(ErrorBody),
    /// No `Content-Type: application/json`.
    #[response(status = 415, description = "INVALID_JSON: the request has no `Content-Type: application/json`")]
    NoJson(ErrorBody),
}

/// The answers of an engine call about one project, task or terminal: any of the
/// engine's error kinds except a bug.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum EngineErrors {
    /// Unknown id.
    #[response(status = 404, description = "PROJECT_NOT_FOUND, TASK_NOT_FOUND, TERMINAL_NOT_FOUND, …: no such id")]
    NotFound(ErrorBody),
    /// The state does not allow it.
    #[response(
        status = 409,
        description = "The current state does not allow this (e.g. CONFLICT, BRANCH_EXISTS, PUSH_REJECTED, REMOTE_ERROR: the remote refused, KEYRING_DISABLED: the settings turn the keyring off); the message says why and what to do"
    )]
    Conflict(ErrorBody),
    /// Invalid values.
    #[response(status = 422, description = "INVALID_INPUT and other codes of invalid values: nothing was changed; the message names the value and the fix")]
    Invalid(ErrorBody),
    /// A service AnyCode needs is unavailable.
    #[response(
        status = 503,
        description = "DOCKER_UNAVAILABLE, IMAGE_MISSING, KEYRING_UNAVAILABLE (no Secret Service, or it is locked), GITHUB_UNREACHABLE, GITHUB_RATE_LIMITED, REMOTE_UNREACHABLE: a service AnyCode needs does not answer; the message has the fix"
    )]
    Unavailable(ErrorBody),
}

/// The document: [`ApiDoc`] with the API's paths under `/api`.
pub fn document() -> OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        let (_, api) = crate::api::routes().split_for_parts();
        let mut doc = ApiDoc::openapi().nest("/api", api);
        add_auth_answers(&mut doc);
        doc
    })
    .clone()
}

/// The document as the JSON text that is served and checked in (pretty, with a
/// final newline).
pub fn document_json() -> String {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut s = document().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        s.push('\n');
        s
    })
    .clone()
}
