//! A small client of a running server's API, for `task` and `attach`.

use anyhow::{anyhow, Context};
use anycode_core::Config;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Where the server is and how to authenticate.
#[derive(clap::Args, Clone)]
pub struct ServerArgs {
    /// The server's base URL.
    #[arg(long, global = true, default_value = "http://127.0.0.1:7878", env = "ANYCODE_URL")]
    pub url: String,
}

pub struct Client {
    pub base: String,
    pub token: String,
    http: reqwest::Client,
}

impl Client {
    /// Reads the token from `ANYCODE_TOKEN` or the data dir's token file.
    pub fn new(args: &ServerArgs) -> anyhow::Result<Client> {
        let token = match std::env::var("ANYCODE_TOKEN").ok().filter(|t| !t.is_empty()) {
            Some(t) => t,
            None => {
                let path = Config::from_env().token_path();
                std::fs::read_to_string(&path)
                    .with_context(|| format!("no access token at {} (start `anycode serve` first, or set ANYCODE_TOKEN)", path.display()))?
                    .trim()
                    .to_string()
            }
        };
        let base = args.url.trim_end_matches('/').to_string();
        Ok(Client { base, token, http: reqwest::Client::new() })
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let resp = req.bearer_auth(&self.token).send().await.map_err(|e| {
            anyhow!("cannot reach AnyCode at {} ({e}); is `anycode serve` running?", self.base)
        })?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if !status.is_success() {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let msg = v["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            // `CODE: message`, the code as the API names it (`HOST_UNREACHABLE`, …).
            return Err(match v["error"]["code"].as_str() {
                Some(code) => anyhow!("{code}: {msg}"),
                None => anyhow!("{msg} (HTTP {status})"),
            });
        }
        let body = if body.is_empty() { &b"null"[..] } else { &body[..] };
        Ok(serde_json::from_slice(body)?)
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> anyhow::Result<T> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.send::<Value>(self.http.delete(format!("{}{path}", self.base))).await.map(|_| ())
    }
}
