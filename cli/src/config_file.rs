//! `--config FILE`: flag values from a TOML file.
//!
//! Keys are long flag names without dashes in front (`data-dir = "D1"`, `api-port = 8081`,
//! `bootstrap-node = ["spr:…"]`, `metrics = true`). Top-level keys and a `[node]` table apply to
//! `vellum node`; `[upload]`, `[download]` and `[bench]` tables to those commands. The values
//! are inserted as flags right after the subcommand, so flags on the command line override them;
//! a key whose `VELLUM_*` variable is set is skipped, so the environment overrides them too.
//! Unknown keys fail like unknown flags do.

use std::ffi::OsString;
use std::path::PathBuf;

const SUBCOMMANDS: [&str; 4] = ["node", "upload", "download", "bench"];

fn env_name(key: &str) -> String {
    format!("VELLUM_{}", key.to_ascii_uppercase().replace('-', "_"))
}

fn value_to_flags(key: &str, value: &toml::Value) -> Result<Vec<OsString>, String> {
    let scalar = |v: &toml::Value| -> Result<String, String> {
        match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            other => Err(format!("config key {key:?}: unsupported value {other}")),
        }
    };
    Ok(match value {
        toml::Value::Boolean(true) => vec![format!("--{key}").into()],
        toml::Value::Boolean(false) => vec![],
        toml::Value::Array(items) => {
            items.iter().map(|v| scalar(v).map(|s| format!("--{key}={s}").into())).collect::<Result<_, _>>()?
        }
        v => vec![format!("--{key}={}", scalar(v)?).into()],
    })
}

/// Returns `args` with the config file's values inserted after the subcommand.
pub fn args_with_config(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let mut path: Option<PathBuf> = None;
    let mut skip_next = false;
    let mut sub_at = None;
    for (i, a) in args.iter().enumerate().skip(1) {
        if skip_next {
            path = Some(PathBuf::from(a));
            skip_next = false;
            continue;
        }
        let text = a.to_string_lossy();
        if text == "--config" {
            skip_next = true;
        } else if let Some(p) = text.strip_prefix("--config=") {
            path = Some(PathBuf::from(p));
        } else if sub_at.is_none() && SUBCOMMANDS.contains(&text.as_ref()) {
            sub_at = Some(i);
        }
    }
    let path = match path.or_else(|| std::env::var_os("VELLUM_CONFIG").map(PathBuf::from)) {
        Some(p) => p,
        None => return Ok(args),
    };
    let Some(sub_at) = sub_at else { return Ok(args) };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("config file {}: {e}", path.display()))?;
    let table: toml::Table = text.parse().map_err(|e| format!("config file {}: {e}", path.display()))?;
    let sub = args[sub_at].to_string_lossy().into_owned();
    let mut flags = Vec::new();
    let mut add = |t: &toml::Table| -> Result<(), String> {
        for (key, value) in t {
            if value.is_table() {
                continue;
            }
            if std::env::var_os(env_name(key)).is_some() {
                continue;
            }
            flags.extend(value_to_flags(key, value)?);
        }
        Ok(())
    };
    if sub == "node" {
        add(&table)?;
    }
    if let Some(toml::Value::Table(t)) = table.get(&sub) {
        add(t)?;
    }
    let mut out = args;
    // `bench` has its own subcommand; its flags go after that.
    let at = if sub == "bench" { (sub_at + 2).min(out.len()) } else { sub_at + 1 };
    out.splice(at..at, flags);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    use crate::{Cli, Command};

    fn parse(file: &str, argv: &[&str]) -> Result<Cli, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("v.toml");
        std::fs::write(&path, file).map_err(|e| e.to_string())?;
        let mut args: Vec<OsString> = vec!["vellum".into(), "--config".into(), path.clone().into()];
        args.extend(argv.iter().map(OsString::from));
        let args = args_with_config(args)?;
        Cli::try_parse_from(args).map_err(|e| e.to_string())
    }

    #[test]
    fn file_values_apply_and_the_command_line_wins() {
        let cli = parse(
            "data-dir = \"D1\"\napi-port = 9000\nmetrics = true\nbootstrap-node = [\"spr:a\", \"spr:b\"]\n",
            &["node", "--api-port", "9001"],
        )
        .expect("parses");
        let Command::Node(n) = cli.command else { panic!("node") };
        assert_eq!(n.data_dir, PathBuf::from("D1"));
        assert_eq!(n.api_port, 9001);
        assert!(n.metrics);
        assert_eq!(n.bootstrap_node, vec!["spr:a".to_owned(), "spr:b".to_owned()]);
    }

    #[test]
    fn unknown_keys_and_bad_files_fail() {
        assert!(parse("no-such-flag = 1\n", &["node"]).is_err());
        assert!(parse("this is not toml", &["node"]).is_err());
    }
}
