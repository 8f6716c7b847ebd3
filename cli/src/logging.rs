//! Logging to stderr with `tracing`, filterable per target (`vellum::net`, `vellum::store`, …)
//! and changeable at run time through the API.

use std::sync::Arc;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

use node::api::LogControl;

/// Turns a Codex-style level or a filter directive into an `EnvFilter`.
pub(crate) fn filter(level: &str) -> Result<EnvFilter, String> {
    let directive = match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => "trace".to_owned(),
        "DEBUG" => "debug".to_owned(),
        "INFO" | "NOTICE" => "info".to_owned(),
        "WARN" => "warn".to_owned(),
        "ERROR" | "FATAL" => "error".to_owned(),
        _ => level.trim().to_owned(),
    };
    EnvFilter::try_new(&directive).map_err(|e| format!("invalid log level {level:?}: {e}"))
}

/// Installs the global subscriber; returns the control the API uses to change the level.
pub(crate) fn init(level: &str) -> anyhow::Result<LogControl> {
    let (layer, handle) = reload::Layer::new(filter(level).map_err(anyhow::Error::msg)?);
    tracing_subscriber::registry()
        .with(layer)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .try_init()?;
    Ok(Arc::new(move |level: &str| {
        let f = filter(level)?;
        handle.reload(f).map_err(|e| e.to_string())
    }))
}
