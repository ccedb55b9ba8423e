//! `[api]`: the admin API's address, tokens and TLS.

use std::path::PathBuf;

use serde::Deserialize;

use super::Problem;

/// `[api]`: the local admin HTTP API (and the CLI's way to it).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSection {
    /// Address and port to listen on; loopback unless you mean otherwise.
    pub listen: String,
    /// The bearer token for every route but /api/v1/health (or `token_file`).
    pub token: Option<String>,
    /// A file holding the token (relative paths: next to the configuration).
    pub token_file: Option<PathBuf>,
    /// A token that may only read (GET), or `read_only_token_file`.
    pub read_only_token: Option<String>,
    pub read_only_token_file: Option<PathBuf>,
    /// PEM certificate chain and private key: serve HTTPS instead of HTTP.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            listen: "127.0.0.1:8470".into(),
            token: None,
            token_file: None,
            read_only_token: None,
            read_only_token_file: None,
            tls_cert: None,
            tls_key: None,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// The API's tokens, read from the configuration or its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiTokens {
    pub admin: String,
    pub read_only: Option<String>,
}

/// Shortest token accepted: a guessable token is no protection.
const MIN_TOKEN_LEN: usize = 16;

impl ApiSection {
    /// The tokens, or what is wrong with them (each naming its key).
    pub fn tokens(&self) -> Result<ApiTokens, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut read =
            |key: &str, inline: &Option<String>, file: &Option<PathBuf>, required: bool| {
                let token = match (inline, file) {
                    (Some(_), Some(_)) => {
                        problems.push(Problem {
                            key: format!("api.{key}"),
                            message: format!("set either {key} or {key}_file, not both"),
                        });
                        return None;
                    }
                    (Some(t), None) => t.trim().to_owned(),
                    (None, Some(f)) => match std::fs::read_to_string(f) {
                        Ok(t) => t.trim().to_owned(),
                        Err(e) => {
                            problems.push(Problem {
                                key: format!("api.{key}_file"),
                                message: format!("cannot read {}: {e}", f.display()),
                            });
                            return None;
                        }
                    },
                    (None, None) => {
                        if required {
                            problems.push(Problem {
                                key: format!("api.{key}"),
                                message: format!("the admin API needs a {key} (or {key}_file)"),
                            });
                        }
                        return None;
                    }
                };
                if token.len() < MIN_TOKEN_LEN
                    || token.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    problems.push(Problem {
                        key: format!("api.{key}"),
                        message: format!(
                            "a token must be at least {MIN_TOKEN_LEN} characters without spaces"
                        ),
                    });
                    return None;
                }
                Some(token)
            };
        let admin = read("token", &self.token, &self.token_file, true);
        let read_only = read(
            "read_only_token",
            &self.read_only_token,
            &self.read_only_token_file,
            false,
        );
        match admin {
            Some(admin) if problems.is_empty() => {
                if read_only.as_deref() == Some(admin.as_str()) {
                    return Err(vec![Problem {
                        key: "api.read_only_token".into(),
                        message: "must differ from the admin token".into(),
                    }]);
                }
                Ok(ApiTokens { admin, read_only })
            }
            _ => Err(problems),
        }
    }

    pub(super) fn problems(&self, bad: &mut impl FnMut(&str, String)) {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            bad(
                "api.listen",
                format!(
                    "{:?} is not an address:port (e.g. 127.0.0.1:8470)",
                    self.listen
                ),
            );
        }
        if let Err(problems) = self.tokens() {
            for p in problems {
                bad(&p.key, p.message);
            }
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => bad("api.tls_key", "tls_cert needs tls_key".into()),
            (None, Some(_)) => bad("api.tls_cert", "tls_key needs tls_cert".into()),
            _ => {}
        }
        for (key, file) in [
            ("api.tls_cert", &self.tls_cert),
            ("api.tls_key", &self.tls_key),
        ] {
            if let Some(f) = file {
                if let Err(e) = std::fs::metadata(f) {
                    bad(key, format!("cannot read {}: {e}", f.display()));
                }
            }
        }
        if !(1024..=16 << 20).contains(&self.max_body_bytes) {
            bad(
                "api.max_body_bytes",
                format!("{} is outside 1024..=16777216", self.max_body_bytes),
            );
        }
    }
}
