//! Log set-up: tracing to stderr, as text or JSON lines.
//!
//! The bridge's own events never carry relayed bytes or secrets. Some
//! dependencies do at `trace` (tungstenite logs every frame it sends, with
//! its payload), so a bare level such as `trace` applies to this crate
//! only and the dependencies stay at `info` or quieter; naming a
//! dependency explicitly (`trace,tungstenite=trace`) overrides that, for
//! debugging on a test box only.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::options::LogFormat;

/// Crates whose `debug`/`trace` output may contain relayed bytes.
const CHATTY: &[&str] = &[
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tokio_rustls",
    "axum",
    "tower_http",
];

/// Turns the `--log-level` value into a filter, capping [`CHATTY`] crates
/// at `info` unless the value names them.
pub fn filter(spec: &str) -> Result<EnvFilter, String> {
    let mut directives = vec![spec.to_string()];
    for krate in CHATTY {
        let named = spec.split(',').any(|d| d.trim().split('=').next() == Some(*krate));
        if !named {
            directives.push(format!("{krate}=info"));
        }
    }
    // A bare level below info (say warn) should keep dependencies quiet
    // too: cap them at that level.
    let bare = spec.trim().to_ascii_lowercase();
    if matches!(bare.as_str(), "off" | "error" | "warn") {
        directives.truncate(1);
        for krate in CHATTY {
            directives.push(format!("{krate}={bare}"));
        }
    }
    EnvFilter::try_new(directives.join(",")).map_err(|e| format!("--log-level {spec:?}: {e}"))
}

/// Installs the global subscriber. Colours only on a terminal, and never
/// with `NO_COLOR` set.
pub fn init(level: &str, format: LogFormat) -> Result<(), String> {
    let filter = filter(level)?;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
    };
    result.map_err(|e| format!("cannot set up logging: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_levels_cap_chatty_dependencies() {
        let directives = |spec: &str| -> Vec<String> {
            filter(spec).unwrap().to_string().split(',').map(str::to_string).collect()
        };
        let d = directives("trace");
        assert!(d.contains(&"tungstenite=info".into()) && d.contains(&"trace".into()), "{d:?}");
        let d = directives("debug,tungstenite=trace");
        assert!(d.contains(&"tungstenite=trace".into()) && !d.contains(&"tungstenite=info".into()), "{d:?}");
        assert!(directives("warn").contains(&"hyper=warn".into()));
        assert!(filter("nonsense=level=x").is_err());
    }
}
