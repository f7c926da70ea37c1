//! The web UI, embedded from `frontend/dist` at build time (read from disk in debug
//! builds). `GET /?token=…` turns the token into the session cookie.

use crate::auth::SESSION_COOKIE;
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

#[derive(rust_embed::Embed)]
#[folder = "../../frontend/dist/"]
struct Dist;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/", get(index)).fallback(get(asset))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn index(State(st): State<AppState>, Query(q): Query<TokenQuery>) -> Response {
    if let Some(t) = q.token {
        if !st.token.matches(&t) {
            return (StatusCode::UNAUTHORIZED, Html("<h1>Wrong access token</h1><p>Open the link that <code>anycode serve</code> printed.</p>"))
                .into_response();
        }
        let cookie = format!("{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age=31536000", st.token.session_value());
        let mut r = Redirect::to("/").into_response();
        if let Ok(v) = cookie.parse() {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        return r;
    }
    serve_file("index.html")
}

async fn asset(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if Dist::get(path).is_some() {
        serve_file(path)
    } else if path.starts_with("assets/") || path.starts_with("api/") || path.starts_with("ws/") {
        (StatusCode::NOT_FOUND, "not found").into_response()
    } else {
        serve_file("index.html")
    }
}

fn serve_file(path: &str) -> Response {
    match Dist::get(path) {
        Some(f) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            let cache = if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
            ([(header::CONTENT_TYPE, mime.as_ref().to_string()), (header::CACHE_CONTROL, cache.to_string())], f.data).into_response()
        }
        None if path == "index.html" => Html(
            "<!doctype html><title>AnyCode</title><h1>The web UI is not built</h1>\
             <p>Run <code>npm --prefix frontend ci &amp;&amp; npm --prefix frontend run build</code> and rebuild, \
             or use <code>scripts/run.sh</code>. The API works: <a href=\"/api/openapi.json\">/api/openapi.json</a>.</p>",
        )
        .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
