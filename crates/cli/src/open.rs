//! `anycode open`: a new one-time login link for a running server (`POST
//! /api/login-code` with the token from the data dir), printed and opened in the
//! browser. The long-lived token itself never goes into a URL.

use crate::client::{Client, ServerArgs};
use clap::Args;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Args)]
pub struct OpenArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Only print the link; do not open the browser.
    #[arg(long)]
    print: bool,
}

/// Asks the server for a login link, prints it and opens it.
pub async fn run(args: OpenArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.server)?;
    let v: Value = client.post("/api/login-code", &json!({})).await?;
    let url = v["url"].as_str().ok_or_else(|| anyhow::anyhow!("the server gave no login link: {v}"))?;
    println!("{url}");
    eprintln!("(logs in once, within {} s)", v["expires_in"].as_u64().unwrap_or(0));
    if !args.print && std::env::var_os("CI").is_none() {
        let _ = webbrowser::open(url);
    }
    Ok(ExitCode::SUCCESS)
}
