//! What bounds the desktop app's memory: the webview's WebKit settings (Linux,
//! WebKitGTK) and the app process's allocator. Each can be switched back from the
//! environment, so one build measures both (`scripts/desktop-memory-bench.sh`).
//!
//! - WebKit's cache model: [`CacheModel::DocumentViewer`] unless
//!   `ANYCODE_WEBKIT_CACHE_MODEL` says `web-browser` (WebKitGTK's default) or
//!   `document-browser`. The window shows one page served from the app's own
//!   process over loopback, so WebKit's in-memory cache of dead resources and its
//!   back/forward cache of pages buy nothing.
//! - glibc malloc arenas: at most [`ARENA_MAX`] in the app process unless
//!   `MALLOC_ARENA_MAX` is set (glibc then follows it; it is also what the WebKit
//!   processes, started with this environment, see). glibc's default is 8 per core:
//!   each thread of the async runtime and of WebKit's and GTK's pools that frees
//!   memory in an arena of its own keeps those pages.

use std::fmt;

/// The environment variable with web UI settings to preset in the window's
/// localStorage: a JSON object of `anycode.*` keys and string or number values, e.g.
/// `{"anycode.scrollback": 10000, "anycode.eagerTerminals": "1"}` (see
/// [`storage_preset_script`]). For measurements and for presetting a setting the UI
/// has no control for; a value the user already has is kept.
pub const STORAGE_PRESET_ENV: &str = "ANYCODE_DESKTOP_LOCAL_STORAGE";

/// The environment variable that picks WebKit's cache model (see [`CacheModel::parse`]).
pub const CACHE_MODEL_ENV: &str = "ANYCODE_WEBKIT_CACHE_MODEL";

/// The most glibc malloc arenas the app process uses (unless `MALLOC_ARENA_MAX` is set).
pub const ARENA_MAX: i32 = 2;

/// WebKit's cache models (`WebKitCacheModel`), the app's default first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheModel {
    /// No memory cache of dead resources to speak of and no back/forward cache: for
    /// one local page (the app's default).
    #[default]
    DocumentViewer,
    /// WebKitGTK's own default, sized for browsing many remote pages (a memory cache
    /// of up to 128 MB on a machine with 2 GB or more, a back/forward cache).
    WebBrowser,
    /// Between the two: a smaller memory cache, a short back/forward cache.
    DocumentBrowser,
}

impl CacheModel {
    /// Reads a value of [`CACHE_MODEL_ENV`]: `document-viewer`, `web-browser` or
    /// `document-browser` (case and `_`/`-` do not matter); unset or empty is the
    /// default. Errors: any other value (the message names the valid ones).
    pub fn parse(value: Option<&str>) -> Result<CacheModel, String> {
        let v = value.map(|v| v.trim().to_ascii_lowercase().replace('_', "-")).unwrap_or_default();
        match v.as_str() {
            "" | "document-viewer" => Ok(CacheModel::DocumentViewer),
            "web-browser" => Ok(CacheModel::WebBrowser),
            "document-browser" => Ok(CacheModel::DocumentBrowser),
            _ => Err(format!("{CACHE_MODEL_ENV}={v:?}: use document-viewer, document-browser or web-browser")),
        }
    }

    /// The model [`CACHE_MODEL_ENV`] asks for; an invalid value is logged and the
    /// default used.
    pub fn from_env() -> CacheModel {
        CacheModel::parse(std::env::var(CACHE_MODEL_ENV).ok().as_deref()).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring the cache model");
            CacheModel::default()
        })
    }
}

impl fmt::Display for CacheModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CacheModel::DocumentViewer => "document-viewer",
            CacheModel::WebBrowser => "web-browser",
            CacheModel::DocumentBrowser => "document-browser",
        })
    }
}

/// A script (run before each page of the window) that sets the `anycode.*` keys of
/// `json` (a JSON object, see [`STORAGE_PRESET_ENV`]) in localStorage where they
/// are not set yet. Errors: not a JSON object, a key outside `anycode.`, or a value
/// that is not a string or number.
pub fn storage_preset_script(json: &str) -> Result<String, String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("{STORAGE_PRESET_ENV}: not JSON: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err(format!("{STORAGE_PRESET_ENV}: not a JSON object"));
    };
    let mut preset = serde_json::Map::new();
    for (k, v) in map {
        if !k.starts_with("anycode.") {
            return Err(format!("{STORAGE_PRESET_ENV}: {k:?} is not an anycode.* key"));
        }
        let v = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            _ => return Err(format!("{STORAGE_PRESET_ENV}: the value of {k:?} is not a string or number")),
        };
        preset.insert(k, serde_json::Value::String(v));
    }
    // serde_json's output is a valid JavaScript object literal.
    let literal = serde_json::Value::Object(preset).to_string();
    Ok(format!(
        "(function(){{try{{var p={literal};for(var k in p){{if(localStorage.getItem(k)===null)localStorage.setItem(k,p[k]);}}}}catch(e){{}}}})();"
    ))
}

/// Caps the app process's glibc malloc arenas at [`ARENA_MAX`], unless
/// `MALLOC_ARENA_MAX` is set. Call it first thing in `main`, before any thread
/// starts. Does nothing on other C libraries and systems.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // M_ARENA_MAX from glibc's malloc.h.
        const M_ARENA_MAX: libc::c_int = -8;
        // SAFETY: mallopt only sets a malloc parameter; glibc serializes it.
        unsafe {
            libc::mallopt(M_ARENA_MAX, ARENA_MAX);
        }
    }
}

/// Applies `model` to `window`'s WebKit context (Linux; elsewhere the system
/// webview decides and this does nothing). WebKit passes it on to the web and
/// network processes already running.
pub fn tune_webview<R: tauri::Runtime>(window: &tauri::WebviewWindow<R>, model: CacheModel) {
    #[cfg(target_os = "linux")]
    {
        let result = window.with_webview(move |webview| {
            use webkit2gtk::{WebContextExt, WebViewExt};
            let Some(context) = webview.inner().context() else { return };
            context.set_cache_model(match model {
                CacheModel::DocumentViewer => webkit2gtk::CacheModel::DocumentViewer,
                CacheModel::WebBrowser => webkit2gtk::CacheModel::WebBrowser,
                CacheModel::DocumentBrowser => webkit2gtk::CacheModel::DocumentBrowser,
            });
        });
        match result {
            Ok(()) => tracing::info!(cache_model = %model, "webview tuned"),
            Err(e) => tracing::warn!(error = %e, "tuning the webview failed"),
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (window, model);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_presets() {
        let script = storage_preset_script(r#"{"anycode.scrollback": 10000, "anycode.renderer": "dom"}"#).unwrap();
        assert!(script.contains(r#""anycode.scrollback":"10000""#), "{script}");
        assert!(script.contains(r#""anycode.renderer":"dom""#), "{script}");
        assert!(script.contains("localStorage.getItem(k)===null"), "{script}");
        // Quotes and script-ending text stay inside the JSON string.
        let script = storage_preset_script(r#"{"anycode.x": "\"});alert(1);//"}"#).unwrap();
        assert!(script.contains(r#"{"anycode.x":"\"});alert(1);//"}"#), "{script}");
        assert!(storage_preset_script("[]").is_err());
        assert!(storage_preset_script("{").is_err());
        assert!(storage_preset_script(r#"{"token": "x"}"#).is_err_and(|e| e.contains("anycode.*")));
        assert!(storage_preset_script(r#"{"anycode.x": {"a": 1}}"#).is_err());
    }

    #[test]
    fn cache_model_values() {
        assert_eq!(CacheModel::parse(None), Ok(CacheModel::DocumentViewer));
        assert_eq!(CacheModel::parse(Some("")), Ok(CacheModel::DocumentViewer));
        assert_eq!(CacheModel::parse(Some("web-browser")), Ok(CacheModel::WebBrowser));
        assert_eq!(CacheModel::parse(Some("WEB_BROWSER")), Ok(CacheModel::WebBrowser));
        assert_eq!(CacheModel::parse(Some("document-browser")), Ok(CacheModel::DocumentBrowser));
        assert!(CacheModel::parse(Some("huge")).is_err_and(|e| e.contains("document-viewer")));
        for m in [CacheModel::DocumentViewer, CacheModel::WebBrowser, CacheModel::DocumentBrowser] {
            assert_eq!(CacheModel::parse(Some(&m.to_string())), Ok(m));
        }
    }
}
