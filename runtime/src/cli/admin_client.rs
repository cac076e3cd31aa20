//! The CLI's side of the admin API: where it is, the bearer token, one
//! request, and errors that say what to do.

use anyhow::{Context, bail};
use std::path::PathBuf;

/// How long a command waits for a pipeline that is still starting.
pub const STARTING_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// How to reach the admin API of a running `weir run`.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The admin API's address, as the pipeline file's `[admin] address`.
    #[arg(long, env = "WEIR_ADMIN", default_value = "127.0.0.1:9870")]
    admin: String,
    /// A file holding the admin token (else the variable WEIR_ADMIN_TOKEN).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Print the API's JSON answer instead of text (for scripts).
    #[arg(long)]
    pub json: bool,
}

/// An answer: HTTP status and body (JSON when it parses).
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Answer {
    /// The `error` field, or the whole body.
    pub fn error(&self) -> String {
        self.body
            .get("error")
            .and_then(|e| e.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| self.body.to_string())
    }

    /// The `problems` list, one string each.
    pub fn problems(&self) -> Vec<String> {
        self.body
            .get("problems")
            .and_then(|p| p.as_array())
            .map(|list| {
                list.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl AdminArgs {
    fn token(&self) -> anyhow::Result<String> {
        let token = match &self.token_file {
            Some(file) => std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the token file {}", file.display()))?,
            None => std::env::var("WEIR_ADMIN_TOKEN").map_err(|_| {
                anyhow::anyhow!(
                    "no admin token: set WEIR_ADMIN_TOKEN (or pass --token-file) to the token the pipeline file's [admin] section names"
                )
            })?,
        };
        Ok(token.trim().to_string())
    }

    /// Sends one request; fails with advice on a transport error or a 401.
    /// A pipeline that is still starting is waited for, up to [`STARTING_WAIT`].
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Answer> {
        let token = self.token()?;
        let base = if self.admin.contains("://") {
            self.admin.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", self.admin)
        };
        let url = format!("{base}{path}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = reqwest::Client::new();
        let send = || {
            runtime.block_on(async {
                let mut request = client.request(method.clone(), &url).bearer_auth(&token);
                if let Some(body) = &body {
                    request = request.body(body.clone());
                }
                let response = request.send().await.map_err(|e| {
                    anyhow::anyhow!(
                        "cannot reach the admin API at {base}: {e}. Is `weir run` running with an [admin] section? (point --admin or WEIR_ADMIN at its address)"
                    )
                })?;
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                anyhow::Ok((status, text))
            })
        };
        // A pipeline still starting (tables, plugins, recovery) answers 503
        // for a while: wait for it rather than fail a command given right
        // after `weir run`.
        let deadline = std::time::Instant::now() + STARTING_WAIT;
        let mut said = false;
        let (status, text) = loop {
            let (status, text) = send()?;
            if status != 503
                || !text.contains("is starting")
                || std::time::Instant::now() > deadline
            {
                break (status, text);
            }
            if !said {
                eprintln!(
                    "the pipeline is starting; waiting for it (up to {}s)",
                    STARTING_WAIT.as_secs()
                );
                said = true;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        };
        if status == 401 {
            bail!(
                "the admin API at {base} refused the token (401): set WEIR_ADMIN_TOKEN or --token-file to the token its [admin] section names"
            );
        }
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Ok(Answer { status, body })
    }

    /// Prints `answer` as JSON when `--json` was given; says whether it did.
    pub fn printed_json(&self, answer: &Answer) -> bool {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&answer.body).unwrap_or_default()
            );
        }
        self.json
    }
}

/// Percent-encodes a path segment or query value.
pub fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
