#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The checked-in API description (`docs/openapi.json`) is the generated one.
//!
//! Regenerate with `UPDATE_OPENAPI=1 cargo test -p anycode-server --test openapi`
//! (or `anycode openapi > docs/openapi.json`).

use std::path::PathBuf;

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[test]
fn openapi_document_is_current() {
    let generated = anycode_server::openapi::document_json();
    let path = checked_in();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/openapi.json differs from the document the server generates: run `UPDATE_OPENAPI=1 cargo test -p anycode-server --test openapi` and commit it"
    );
}

#[test]
fn every_operation_documents_its_errors() {
    let doc: serde_json::Value = serde_json::from_str(&anycode_server::openapi::document_json()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 37, "{} paths", paths.len());
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("403"), "{method} {path} lacks 403");
            if path != "/api/pair" {
                assert!(responses.contains_key("401"), "{method} {path} lacks 401");
            }
        }
    }
    // Every reference resolves.
    fn refs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = vec![];
    refs(&doc, &mut all);
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(doc["components"]["schemas"][name].is_object(), "$ref {r} does not resolve");
    }
    // Every task state, including the agent's.
    let states = doc["components"]["schemas"]["TaskStatus"]["enum"].as_array().unwrap();
    for s in ["creating", "queued", "starting", "running", "needs_approval", "waiting_input", "done", "failed", "paused", "stopped", "exited", "error"] {
        assert!(states.contains(&serde_json::json!(s)), "TaskStatus lacks {s}");
    }
}
