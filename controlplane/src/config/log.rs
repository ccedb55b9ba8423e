//! `[log]`: level and format.

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `levee=debug,warn`...
    pub level: String,
    /// `text` (for a terminal) or `json` (one object per line, for journald
    /// and log shippers).
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: Default::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogConfig {
    pub(super) fn problems(&self, bad: &mut impl FnMut(&str, String)) {
        if tracing_subscriber::EnvFilter::try_new(&self.level).is_err() {
            bad(
                "log.level",
                format!(
                    "{:?} is not a log filter (e.g. info, debug, levee=debug)",
                    self.level
                ),
            );
        }
    }
}
