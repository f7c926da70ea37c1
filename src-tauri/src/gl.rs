//! Whether the webview's WebKit (Linux, WebKitGTK) uses GL: decided once, before GTK
//! and WebKit start, from the machine's GPU and [`GL_ENV`].
//!
//! Without a GPU (no DRM render node `/dev/dri/renderD*`: a VM, a container, a remote
//! X or VNC session, Xvfb) or with `LIBGL_ALWAYS_SOFTWARE` set, GL is Mesa's llvmpipe:
//! GL emulated on the CPU, which draws this UI no faster than WebKit's own CPU path and
//! costs memory: Mesa and LLVM in each process that opens an EGL display (26 MB PSS
//! in WebKit's UI process, which is the app's, measured under Xvfb), and accelerated
//! compositing's buffers and GL state in the web process (about 90 MB more when
//! compositing is on). There the app turns WebKit's GL off ([`GlChoice::Software`]):
//!
//! - `WEBKIT_DISABLE_DMABUF_RENDERER=1` and `WEBKIT_WEB_RENDER_DEVICE_FILE=/dev/dri/none`
//!   (each unless already set): WebKitGTK's UI process otherwise opens an EGL display
//!   at start, to probe its DMA-BUF renderer and to find the GPU's render node for the
//!   web process. The path names no device, as there is none to use (the web process
//!   then draws without GBM buffers);
//! - `GDK_GL=disable` (unless set): GTK 3's X11 backend otherwise probes GLX when it
//!   picks the window's visuals, which loads Mesa's GLX driver and LLVM into the app's
//!   process just the same (about 24 MB PSS under Xvfb). Nothing in the app draws
//!   with GTK's GL;
//! - the webview's hardware acceleration policy `Never` ([`apply`]): no accelerated
//!   compositing, so no GL contexts or GL-backed layers in the web process.
//!
//! WebKitGTK's web process still opens a (software) EGL display at start (2.50 aborts
//! without one), so Mesa and LLVM stay mapped there. With a render node WebKit keeps
//! its defaults (GPU compositing, the DMA-BUF renderer).

use std::fmt;
use std::path::Path;

/// The environment variable that overrides the choice (see [`GlMode::parse`]); the
/// memory bench uses it to compare both in one build.
pub const GL_ENV: &str = "ANYCODE_WEBKIT_GL";

/// Where DRM device nodes live: a render node there (`renderD128`, …) is a GPU that
/// WebKit can use.
pub const DRI_DIR: &str = "/dev/dri";

/// The value given to `WEBKIT_WEB_RENDER_DEVICE_FILE` when GL is off: a path that is
/// no device.
pub const NO_RENDER_DEVICE: &str = "/dev/dri/none";

/// What [`GL_ENV`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GlMode {
    /// GL only with a GPU (a render node) and without `LIBGL_ALWAYS_SOFTWARE`.
    #[default]
    Auto,
    /// No GL in WebKit's UI process and no accelerated compositing, GPU or not.
    Off,
    /// WebKit's defaults, even on software GL.
    On,
}

impl GlMode {
    /// Reads a value of [`GL_ENV`]: `auto`, `off` or `on` (case does not matter);
    /// unset or empty is `auto`. Errors: any other value (the message names the
    /// valid ones).
    pub fn parse(value: Option<&str>) -> Result<GlMode, String> {
        match value.map(|v| v.trim().to_ascii_lowercase()).unwrap_or_default().as_str() {
            "" | "auto" => Ok(GlMode::Auto),
            "off" => Ok(GlMode::Off),
            "on" => Ok(GlMode::On),
            other => Err(format!("{GL_ENV}={other:?}: use auto, off or on")),
        }
    }
}

/// What the app chose, and why (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlChoice {
    /// WebKit's defaults: it may use GL (a GPU, or [`GlMode::On`]).
    Hardware,
    /// WebKit's GL off: CPU drawing, no EGL in the UI process.
    Software,
}

impl fmt::Display for GlChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GlChoice::Hardware => "hardware",
            GlChoice::Software => "software",
        })
    }
}

/// Whether a value of `LIBGL_ALWAYS_SOFTWARE` turns it on, as Mesa reads it (`1`,
/// `true`, `yes`, `y`; case does not matter).
pub fn truthy(value: &str) -> bool {
    matches!(value.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "y")
}

/// Whether `dir` (normally [`DRI_DIR`]) holds a DRM render node (`renderD*`). A
/// missing or unreadable directory holds none.
pub fn has_render_node(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("renderD")))
        .unwrap_or(false)
}

/// The rule: [`GlMode::Auto`] gives [`GlChoice::Hardware`] only with a render node
/// and without `LIBGL_ALWAYS_SOFTWARE` (its value in `libgl_always_software`).
pub fn choose(mode: GlMode, render_node: bool, libgl_always_software: Option<&str>) -> GlChoice {
    match mode {
        GlMode::On => GlChoice::Hardware,
        GlMode::Off => GlChoice::Software,
        GlMode::Auto if render_node && !libgl_always_software.is_some_and(truthy) => GlChoice::Hardware,
        GlMode::Auto => GlChoice::Software,
    }
}

/// The WebKitGTK and GTK environment for `choice`: (variable, value) pairs to set where the
/// variable is not set yet (none for [`GlChoice::Hardware`]).
pub fn webkit_env(choice: GlChoice) -> &'static [(&'static str, &'static str)] {
    match choice {
        GlChoice::Hardware => &[],
        GlChoice::Software => &[
            ("WEBKIT_DISABLE_DMABUF_RENDERER", "1"),
            ("WEBKIT_WEB_RENDER_DEVICE_FILE", NO_RENDER_DEVICE),
            ("GDK_GL", "disable"),
        ],
    }
}

/// Decides from this machine and the environment ([`GL_ENV`], `LIBGL_ALWAYS_SOFTWARE`,
/// [`DRI_DIR`]) and sets [`webkit_env`]'s variables that are not set yet. Linux only
/// (elsewhere it does nothing and returns [`GlChoice::Hardware`]). Call it first thing
/// in `main`, before any thread starts (it changes the process environment, which the
/// WebKit processes inherit) and before GTK initializes. An invalid [`GL_ENV`] is
/// logged and `auto` used.
pub fn prepare() -> GlChoice {
    if !cfg!(target_os = "linux") {
        return GlChoice::Hardware;
    }
    let mode = GlMode::parse(std::env::var(GL_ENV).ok().as_deref()).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "ignoring the GL mode");
        GlMode::Auto
    });
    let render_node = has_render_node(Path::new(DRI_DIR));
    let choice = choose(mode, render_node, std::env::var("LIBGL_ALWAYS_SOFTWARE").ok().as_deref());
    for (key, value) in webkit_env(choice) {
        if std::env::var_os(key).is_none() {
            std::env::set_var(key, value);
        }
    }
    tracing::info!(gl = %choice, ?mode, render_node, "webview GL");
    choice
}

/// Applies `choice` to `window`'s WebKit settings (Linux; elsewhere nothing): for
/// [`GlChoice::Software`] the hardware acceleration policy `Never` (no accelerated
/// compositing). Call it before the page loads.
pub fn apply<R: tauri::Runtime>(window: &tauri::WebviewWindow<R>, choice: GlChoice) {
    #[cfg(target_os = "linux")]
    if choice == GlChoice::Software {
        let result = window.with_webview(|webview| {
            use webkit2gtk::{SettingsExt, WebViewExt};
            if let Some(settings) = webview.inner().settings() {
                settings.set_hardware_acceleration_policy(webkit2gtk::HardwareAccelerationPolicy::Never);
            }
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "setting the webview's acceleration policy failed");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (window, choice);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(GlMode::parse(None), Ok(GlMode::Auto));
        assert_eq!(GlMode::parse(Some(" ")), Ok(GlMode::Auto));
        assert_eq!(GlMode::parse(Some("OFF")), Ok(GlMode::Off));
        assert_eq!(GlMode::parse(Some("on")), Ok(GlMode::On));
        assert!(GlMode::parse(Some("maybe")).is_err_and(|e| e.contains("auto, off or on")));
    }

    #[test]
    fn the_rule() {
        use GlChoice::*;
        assert_eq!(choose(GlMode::Auto, true, None), Hardware);
        assert_eq!(choose(GlMode::Auto, false, None), Software);
        assert_eq!(choose(GlMode::Auto, true, Some("1")), Software);
        assert_eq!(choose(GlMode::Auto, true, Some("true")), Software);
        assert_eq!(choose(GlMode::Auto, true, Some("0")), Hardware);
        assert_eq!(choose(GlMode::Auto, true, Some("")), Hardware);
        assert_eq!(choose(GlMode::On, false, Some("1")), Hardware);
        assert_eq!(choose(GlMode::Off, true, None), Software);
        assert!(webkit_env(Hardware).is_empty());
        assert!(webkit_env(Software).contains(&("WEBKIT_DISABLE_DMABUF_RENDERER", "1")));
        assert!(webkit_env(Software).contains(&("GDK_GL", "disable")));
    }

    #[test]
    fn render_nodes() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!has_render_node(&dir.path().join("missing")));
        std::fs::write(dir.path().join("card0"), "").unwrap();
        assert!(!has_render_node(dir.path()));
        std::fs::write(dir.path().join("renderD128"), "").unwrap();
        assert!(has_render_node(dir.path()));
    }
}
