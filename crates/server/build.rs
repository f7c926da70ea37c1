//! Build script: makes sure `frontend/dist` exists so the UI embed compiles before the UI is built.
// The web UI is embedded from frontend/dist. A checkout where it was not built yet
// still compiles: the folder is made empty here and the server then answers `/`
// with a page saying how to build the UI.
fn main() {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../frontend/dist");
    if !dist.exists() {
        let _ = std::fs::create_dir_all(&dist);
    }
    println!("cargo:rerun-if-changed=../../frontend/dist");
}
