//! Log set-up: tracing to stderr, as text or JSON lines.
//!
//! The bridge's own events never carry relayed bytes or secrets. Other
//! crates' do at `debug` and `trace`: tungstenite logs every frame it
//! sends and receives with its payload (the `connect` message with its
//! token, `PASS` lines, mail), and hyper and rustls log buffers. So below
//! the user's filter sits a floor that no directive can lower: events and
//! spans from any crate but this one pass only at `info` or above. A plain
//! level (`trace`), a per-target directive (`tungstenite=trace`) and a
//! span directive (`info,[session]=trace`, which would otherwise enable
//! every event inside a session, whoever emits it) all end at the floor.
//!
//! ```text
//!  event ─► EnvFilter (--log-level) ─► floor (ws_bridge: any level; others: info and up) ─► stderr
//! ```

use std::io::IsTerminal;

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::{FilterExt, filter_fn},
    fmt::MakeWriter,
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
};

use crate::options::LogFormat;

/// Parses the `--log-level` value: a level (`error` … `trace`) or tracing
/// directives (`info,ws_bridge::relay=debug`, `info,[session]=trace`).
pub fn filter(spec: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(spec).map_err(|e| format!("--log-level {spec:?}: {e}"))
}

/// Whether the floor lets `meta` through: this crate at any level, every
/// other crate at `info` or above, whatever the filter says.
pub fn above_floor(meta: &Metadata<'_>) -> bool {
    let target = meta.target();
    target == "ws_bridge" || target.starts_with("ws_bridge::") || *meta.level() <= Level::INFO
}

/// The formatting layer with the user's filter and the floor, writing to
/// `writer` (stderr in the binary, a buffer in tests).
pub fn layer<S, W>(spec: &str, format: LogFormat, ansi: bool, writer: W) -> Result<impl Layer<S>, String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = filter(spec)?.and(filter_fn(above_floor));
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let layer = match format {
        LogFormat::Text => fmt.with_ansi(ansi).boxed(),
        LogFormat::Json => fmt.json().with_current_span(true).with_span_list(false).boxed(),
    };
    Ok(layer.with_filter(filter))
}

/// Installs the global subscriber. Colours only on a terminal, and never
/// with `NO_COLOR` set.
pub fn init(level: &str, format: LogFormat) -> Result<(), String> {
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::registry()
        .with(layer(level, format, ansi, std::io::stderr)?)
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write,
        sync::{Arc, Mutex},
    };

    use tracing::{debug, info, info_span, trace, warn};
    use tracing_subscriber::Registry;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What a session logs, ours and a dependency's, under `spec`.
    fn logged(spec: &str, format: LogFormat) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber =
            Registry::default().with(layer(spec, format, false, move || writer.clone()).unwrap());
        tracing::subscriber::with_default(subscriber, || {
            let span = info_span!("session", id = 7, client = "198.51.100.7");
            let _in = span.enter();
            info!("bridge-info-line");
            trace!("bridge-trace-line");
            trace!(target: "tungstenite::protocol", "received frame TEXT connect token=SECRET-TOKEN");
            debug!(target: "tokio_tungstenite::compat", "PASS SECRET-PASSWORD");
            trace!(target: "hyper::proto::h1::io", "read 1200 bytes: SECRET-BODY");
            debug!(target: "rustls::conn", "SECRET-RUSTLS");
            trace!(target: "axum::serve", "SECRET-AXUM");
            info!(target: "hyper::server", "dependency-info-line");
            warn!(target: "rustls::conn", "dependency-warn-line");
        });
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn no_filter_lowers_the_floor_for_other_crates() {
        let filters = [
            "trace",
            "info,[session]=trace",
            "[session]=trace",
            "[session{id=7}]=trace",
            "tungstenite=trace,tokio_tungstenite=trace",
            "trace,tungstenite=trace,tokio_tungstenite=trace,hyper=trace,rustls=trace,axum=trace",
            "debug,ws_bridge=trace",
        ];
        for spec in filters {
            for format in [LogFormat::Text, LogFormat::Json] {
                let out = logged(spec, format);
                assert!(
                    !out.contains("SECRET"),
                    "{spec} ({format}) let a dependency's payload through:\n{out}"
                );
                if spec.starts_with("trace") || spec.starts_with("info") || spec.starts_with("debug") {
                    assert!(out.contains("dependency-warn-line"), "{spec} ({format}): warnings pass\n{out}");
                }
            }
        }
        // The floor leaves the bridge's own verbosity to the filter.
        let out = logged("info,[session]=trace", LogFormat::Text);
        assert!(out.contains("bridge-trace-line") && out.contains("dependency-info-line"), "{out}");
        let out = logged("info", LogFormat::Text);
        assert!(out.contains("bridge-info-line") && !out.contains("bridge-trace-line"), "{out}");
        let out = logged("warn", LogFormat::Text);
        assert!(!out.contains("bridge-info-line") && !out.contains("dependency-info-line"), "{out}");
    }

    #[test]
    fn bad_filters_are_errors() {
        assert!(filter("nonsense=level=x").is_err());
        assert!(filter("info,[session]=trace").is_ok());
    }
}
