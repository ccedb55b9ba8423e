//! The CLI client of the admin API (`levee incidents|rules|status ...`), in the
//! spirit of `cscli`: address and token from flags, the environment or the
//! configuration file; human tables by default, `--json` for scripts.

pub mod incidents;
pub mod integrations;
pub mod rules;
pub mod status;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::config::{Config, Purpose};
use crate::Failure;

/// Where the API is and how to authenticate, shared by every client command.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// The API's base URL (default: from --config, else http://127.0.0.1:8470).
    #[arg(long, env = "LEVEE_API", global = true)]
    pub api: Option<String>,
    /// The bearer token (or LEVEE_TOKEN, --token-file, or the configuration's).
    #[arg(long, env = "LEVEE_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the token.
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// levee's configuration: its [api] section gives the address and token.
    #[arg(long, short, env = "LEVEE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// A PEM CA certificate to trust for an HTTPS API (e.g. a self-signed one).
    #[arg(long, global = true)]
    pub ca_cert: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A connection to the admin API.
#[derive(Debug)]
pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
    token: String,
    pub json: bool,
}

fn usage(message: String) -> Failure {
    Failure::Usage(anyhow::anyhow!(message))
}

impl Client {
    pub fn new(args: &ApiArgs) -> Result<Client, Failure> {
        let section = match &args.config {
            Some(path) => Config::load_for(path, Purpose::Client)
                .map_err(|e| Failure::Usage(e.into()))?
                .api
                .ok_or_else(|| usage(format!("{} has no [api] section", path.display())))
                .map(Some)?,
            None => None,
        };
        let base = match (&args.api, &section) {
            (Some(url), _) => url.trim_end_matches('/').to_owned(),
            (None, Some(s)) => {
                let scheme = if s.tls_cert.is_some() {
                    "https"
                } else {
                    "http"
                };
                let listen = s
                    .listen
                    .replace("0.0.0.0:", "127.0.0.1:")
                    .replace("[::]:", "[::1]:");
                format!("{scheme}://{listen}")
            }
            (None, None) => "http://127.0.0.1:8470".into(),
        };
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(usage(format!(
                "--api: {base:?} is not an http:// or https:// URL"
            )));
        }
        let token = match (&args.token, &args.token_file, &section) {
            (Some(t), _, _) => t.trim().to_owned(),
            (None, Some(f), _) => std::fs::read_to_string(f)
                .map_err(|e| usage(format!("--token-file: cannot read {}: {e}", f.display())))?
                .trim()
                .to_owned(),
            (None, None, Some(s)) => {
                s.tokens()
                    .map_err(|p| usage(p.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")))?
                    .admin
            }
            (None, None, None) => {
                return Err(usage(
                    "no API token: pass --token, set LEVEE_TOKEN, --token-file, or --config with an [api] section".into(),
                ))
            }
        };
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("levee-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &args.ca_cert {
            let pem = std::fs::read(ca)
                .map_err(|e| usage(format!("--ca-cert: cannot read {}: {e}", ca.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| usage(format!("--ca-cert: {}: {e}", ca.display())))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot set up HTTP: {e}")))?;
        Ok(Client {
            http,
            base,
            token,
            json: args.json,
        })
    }

    fn send(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::Response, Failure> {
        let response = request.bearer_auth(&self.token).send().map_err(|e| {
            Failure::Runtime(anyhow::anyhow!(
                "cannot reach the levee API at {}: {e}",
                self.base
            ))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or(text);
        let e = anyhow::anyhow!("{message} (HTTP {})", status.as_u16());
        Err(if status.as_u16() == 400 {
            Failure::Usage(e)
        } else {
            Failure::Runtime(e)
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, Failure> {
        self.send(self.http.get(self.url(path)).query(query))?
            .json()
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("the API's answer is not JSON: {e}")))
    }

    pub fn get_text(&self, path: &str, query: &[(&str, String)]) -> Result<String, Failure> {
        self.send(self.http.get(self.url(path)).query(query))?
            .text()
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot read the API's answer: {e}")))
    }

    pub fn post(&self, path: &str, body: &impl serde::Serialize) -> Result<Value, Failure> {
        self.send(self.http.post(self.url(path)).json(body))?
            .json()
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("the API's answer is not JSON: {e}")))
    }

    /// A POST without a body (an action on a resource).
    pub fn post_empty(&self, path: &str) -> Result<Value, Failure> {
        self.send(self.http.post(self.url(path)))?
            .json()
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("the API's answer is not JSON: {e}")))
    }

    pub fn delete(&self, path: &str) -> Result<Value, Failure> {
        self.send(self.http.delete(self.url(path)))?
            .json()
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("the API's answer is not JSON: {e}")))
    }

    /// Print the answer as one line of JSON (for scripts) when --json was
    /// given; otherwise read it as the API's own type (`crate::resources`)
    /// and print the human rendering.
    pub fn print_as<T: serde::de::DeserializeOwned>(
        &self,
        value: &Value,
        human: impl FnOnce(T) -> String,
    ) -> Result<(), Failure> {
        if self.json {
            println!("{value}");
            return Ok(());
        }
        let typed = T::deserialize(value).map_err(|e| {
            Failure::Runtime(anyhow::anyhow!(
                "the API's answer is not what this levee expects ({e}): is the server another version?"
            ))
        })?;
        print!("{}", human(typed));
        Ok(())
    }
}

/// A plain text table: a header row, then rows, columns padded to fit.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}
