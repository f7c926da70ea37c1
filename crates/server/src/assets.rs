//! The web UI, embedded from `frontend/dist` at build time (read from disk in debug
//! builds, unless the `embed-ui` feature embeds it there too, as in debug bundles). `GET /login?code=…` exchanges a one-time login code for the session
//! cookie and redirects to `/`, so the code leaves the address bar at once.

use crate::auth::{LoginRefusal, SESSION_COOKIE};
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
    Router::new().route("/", get(index)).route("/login", get(login)).fallback(get(asset))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// A small HTML page with `status`, for people rather than programs.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!("<!doctype html><meta charset=\"utf-8\"><title>AnyCode: {title}</title><h1>{title}</h1><p>{body}</p>");
    (status, [(header::CACHE_CONTROL, "no-store"), (header::REFERRER_POLICY, "no-referrer")], Html(html)).into_response()
}

const NEW_LINK: &str = "Run <code>anycode open</code> on the computer AnyCode runs on for a new link (or restart <code>anycode serve</code> or the desktop app, which print or open one).";

async fn index(Query(q): Query<TokenQuery>) -> Response {
    if q.token.is_some() {
        // The token never goes in a URL (browser history, logs); old links are refused
        // whatever they carry.
        return page(StatusCode::BAD_REQUEST, "Links with ?token= are no longer used", NEW_LINK);
    }
    serve_file("index.html")
}

#[derive(Deserialize)]
struct LoginQuery {
    code: Option<String>,
}

/// `GET /login?code=…`: a valid one-time code sets the owner's session cookie and
/// redirects to `/`; a used, expired or unknown one gets a page saying what to do.
async fn login(State(st): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    let refused = match q.code.as_deref().map(|c| st.login.redeem(c)) {
        Some(Ok(())) => None,
        Some(Err(r)) => Some(r),
        None => Some(LoginRefusal::Unknown),
    };
    let title = match refused {
        None => {
            let cookie = format!("{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age=31536000", st.token.session_value());
            let mut r = Redirect::to("/").into_response();
            if let Ok(v) = cookie.parse() {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
            r.headers_mut().insert(header::REFERRER_POLICY, header::HeaderValue::from_static("no-referrer"));
            return r;
        }
        Some(LoginRefusal::Used) => "This login link was used already",
        Some(LoginRefusal::Expired) => "This login link has expired",
        Some(LoginRefusal::Unknown) => "This login link is not valid",
    };
    page(StatusCode::UNAUTHORIZED, title, &format!("Each link logs in once, within {} s of being made. {NEW_LINK}", st.login.ttl().as_secs()))
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
