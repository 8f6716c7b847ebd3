//! Logging to stderr with `tracing`, filterable per target (`vellum::net`, `vellum::store`, …)
//! and changeable at run time through the API.
//!
//! A level setting is read in one of two syntaxes:
//! - the reference node's chronicles syntax, `LEVEL` or `LEVEL;LEVEL:topic,topic;…` (levels TRACE,
//!   DEBUG, INFO, NOTICE, WARN, ERROR, FATAL, any case): the first part is the default level, each
//!   further part sets the level of some topics. The reference's topics map to Vellum's targets
//!   where one does the same work (`blockexcnetwork` → `vellum::net`); any other topic is taken
//!   as a target prefix (`TRACE:libp2p_gossipsub`);
//! - tracing's filter syntax, `info,vellum::net=debug`: comma-separated levels and `target=level`.
//!
//! Anything else is refused with a message, never installed: a filter that enables nothing but an
//! unknown target would silence the node.

use std::sync::Arc;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

use node::api::LogControl;

/// The reference's chronicles topics and the targets that do the same work in Vellum.
const TOPICS: &[(&str, &[&str])] = &[
    ("blockexcnetwork", &["vellum::net"]),
    ("blockexcengine", &["vellum::fetch", "vellum::net::serve"]),
    ("pendingblocks", &["vellum::fetch"]),
    ("networkstore", &["vellum::fetch"]),
    ("discovery", &["vellum::net"]),
    ("discoveryengine", &["vellum::net"]),
    ("repostore", &["vellum::store"]),
    ("blockstore", &["vellum::store"]),
    ("cachestore", &["vellum::store"]),
    ("maintenance", &["vellum::store"]),
    ("restapi", &["vellum::api"]),
    ("node", &["vellum::node"]),
    ("erasure", &["vellum::slots"]),
    ("slotsbuilder", &["vellum::slots"]),
    ("sales", &["vellum::market::host", "vellum::market::selling", "vellum::market::slots"]),
    ("reservations", &["vellum::market::availability"]),
    ("purchasing", &["vellum::market"]),
    ("marketplace", &["vellum::market", "vellum::chain"]),
    ("contracts", &["vellum::chain"]),
    ("proving", &["vellum::market::proving", "vellum::prover"]),
    ("validator", &["vellum::validator"]),
];

const SYNTAX: &str = "expected a level (TRACE, DEBUG, INFO, NOTICE, WARN, ERROR, FATAL), optionally followed by \
                      ;LEVEL:topic,topic parts (as in INFO;TRACE:blockexcnetwork), or a tracing filter such as \
                      info,vellum::net=debug";

/// The tracing level a chronicles or tracing level name stands for (tracing has no NOTICE or
/// FATAL: they are INFO and ERROR).
fn level(word: &str) -> Option<&'static str> {
    Some(match word.trim().to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" | "NOTICE" => "info",
        "WARN" | "WARNING" => "warn",
        "ERROR" | "FATAL" => "error",
        "OFF" => "off",
        _ => return None,
    })
}

/// Whether text is a target as the node's code writes them (`vellum::net`, `libp2p_swarm`).
fn is_target(text: &str) -> bool {
    !text.is_empty()
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'))
        && !text.starts_with(':')
        && !text.ends_with(':')
}

/// The targets a chronicles topic stands for.
fn topic_targets(topic: &str) -> Result<Vec<&str>, String> {
    let topic = topic.trim();
    if let Some((_, targets)) = TOPICS.iter().find(|(name, _)| name.eq_ignore_ascii_case(topic)) {
        return Ok(targets.to_vec());
    }
    if is_target(topic) { Ok(vec![topic]) } else { Err(format!("invalid topic {topic:?}")) }
}

/// Reads the chronicles syntax: `LEVEL` or `LEVEL;LEVEL:topic,topic;…`.
fn chronicles(setting: &str) -> Result<Vec<String>, String> {
    let mut parts = setting.split(';');
    let first = parts.next().unwrap_or_default().trim();
    let default = level(first).ok_or_else(|| format!("{first:?} is not a level"))?;
    let mut out = vec![default.to_owned()];
    for part in parts {
        let part = part.trim();
        let (lvl, topics) = part.split_once(':').ok_or_else(|| format!("{part:?} is not LEVEL:topic,topic"))?;
        let lvl = level(lvl).ok_or_else(|| format!("{:?} is not a level", lvl.trim()))?;
        let mut any = false;
        for topic in topics.split(',') {
            for target in topic_targets(topic)? {
                out.push(format!("{target}={lvl}"));
                any = true;
            }
        }
        if !any {
            return Err(format!("{part:?} names no topic"));
        }
    }
    Ok(out)
}

/// Reads tracing's filter syntax, level names checked (a bare word that is no level would be
/// read by tracing as a target to enable alone, which silences everything else).
fn tracing_filter(setting: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for directive in setting.split(',') {
        let directive = directive.trim();
        if let Some(lvl) = level(directive) {
            out.push(lvl.to_owned());
            continue;
        }
        let (target, lvl) = directive.rsplit_once('=').ok_or_else(|| format!("{directive:?} is not a level"))?;
        let lvl = level(lvl).ok_or_else(|| format!("{:?} is not a level", lvl.trim()))?;
        let target = target.trim();
        // A span filter (`target[span{field=value}]`) is left to tracing's own parser.
        let plain = target.split('[').next().unwrap_or_default();
        if !(is_target(plain) || (plain.is_empty() && target.starts_with('['))) {
            return Err(format!("{target:?} is not a target"));
        }
        out.push(format!("{target}={lvl}"));
    }
    Ok(out)
}

/// The tracing filter directives a level setting stands for, in either syntax.
pub(crate) fn directives(setting: &str) -> Result<String, String> {
    let trimmed = setting.trim();
    let fail = |why: String| format!("invalid log level {setting:?}: {why}; {SYNTAX}");
    if trimmed.is_empty() {
        return Err(fail("empty".into()));
    }
    // `;` only occurs in the chronicles syntax; a bare level reads the same in both.
    let directives = if trimmed.contains(';') { chronicles(trimmed) } else { tracing_filter(trimmed) };
    let directives = directives.map_err(fail)?.join(",");
    EnvFilter::try_new(&directives).map_err(|e| fail(e.to_string()))?;
    Ok(directives)
}

/// Turns a level setting (chronicles or tracing syntax) into an `EnvFilter`.
pub(crate) fn filter(setting: &str) -> Result<EnvFilter, String> {
    let directives = directives(setting)?;
    EnvFilter::try_new(&directives).map_err(|e| format!("invalid log level {setting:?}: {e}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chronicles_levels_in_any_case() {
        for (given, want) in [
            ("TRACE", "trace"),
            ("debug", "debug"),
            ("Info", "info"),
            ("NOTICE", "info"),
            ("WARN", "warn"),
            ("ERROR", "error"),
            ("FATAL", "error"),
            ("  info  ", "info"),
        ] {
            assert_eq!(directives(given).as_deref(), Ok(want), "{given}");
        }
    }

    #[test]
    fn chronicles_topics_map_to_targets() {
        assert_eq!(directives("INFO;TRACE:blockexcnetwork").as_deref(), Ok("info,vellum::net=trace"));
        assert_eq!(
            directives("warn;debug:restapi,blockexcengine;ERROR:marketplace").as_deref(),
            Ok("warn,vellum::api=debug,vellum::fetch=debug,vellum::net::serve=debug,\
                vellum::market=error,vellum::chain=error")
        );
        // A topic Vellum has no counterpart for is a target prefix.
        assert_eq!(directives("INFO;TRACE:libp2p_gossipsub").as_deref(), Ok("info,libp2p_gossipsub=trace"));
        assert_eq!(directives("INFO;DEBUG:vellum::store").as_deref(), Ok("info,vellum::store=debug"));
        assert_eq!(directives("INFO; TRACE : node ").as_deref(), Ok("info,vellum::node=trace"));
    }

    #[test]
    fn tracing_filters_still_work() {
        assert_eq!(directives("info,vellum::net=debug").as_deref(), Ok("info,vellum::net=debug"));
        assert_eq!(directives("vellum::prover=debug").as_deref(), Ok("vellum::prover=debug"));
        assert_eq!(directives("warn,vellum::market=NOTICE").as_deref(), Ok("warn,vellum::market=info"));
        assert_eq!(directives("off").as_deref(), Ok("off"));
        assert!(directives("info,vellum::net[dial]=trace").is_ok());
        assert!(filter("info,vellum::fetch=debug").is_ok());
    }

    #[test]
    fn junk_is_refused_with_a_message() {
        for junk in [
            "",
            "   ",
            "loud",
            "INFO;",
            ";",
            "TRACE:",
            "INFO;TRACE:",
            "INFO;TRACE",
            "INFO;LOUD:node",
            "INFO;TRACE:,",
            "INFO;TRACE:bad topic",
            "TRACE:blockexcnetwork",
            "info,",
            "vellum::net",
            "vellum::net=loud",
            "=debug",
            "[[",
            "info,vellum::net=debug=trace",
        ] {
            let err = directives(junk).expect_err(junk);
            assert!(err.contains("invalid log level") && err.contains("TRACE, DEBUG"), "{junk:?}: {err}");
            assert!(filter(junk).is_err(), "{junk:?}");
        }
    }
}
