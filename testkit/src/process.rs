//! Running `vellum node` and `vellum validator` as child processes: used by the scenarios, the
//! devnet and `vellum bench transfer`.
//!
//! A node prints one line `REST API at http://ADDR/api/codex/v1` on stdout once it serves; a
//! validator prints `Vellum validator 0x…` once it follows the chain. The helpers wait for that
//! line (and pick up the `Metrics at …` line printed before it), so processes can use port 0 and
//! run side by side. A child is killed and reaped when its handle is dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The line prefix a node prints when its API is up.
pub const READY_PREFIX: &str = "REST API at ";
/// The line prefix a node or a validator prints, before its ready line, when it serves metrics.
pub const METRICS_PREFIX: &str = "Metrics at ";
/// The line prefix a validator prints, with its wallet's address, once it follows the chain.
pub const VALIDATOR_PREFIX: &str = "Vellum validator ";

/// A `vellum node` child process.
#[derive(Debug)]
pub struct NodeProcess {
    child: Child,
    /// Base URL of its API, `http://127.0.0.1:PORT/api/codex/v1`.
    pub api: String,
    /// URL of its metrics endpoint, if enabled.
    pub metrics: Option<String>,
}

impl NodeProcess {
    /// Starts `binary node ARGS…` and waits (up to `timeout`) for its API.
    pub fn spawn(binary: &Path, args: &[String], timeout: Duration) -> std::io::Result<Self> {
        Self::spawn_logging_to(binary, args, timeout, None)
    }

    /// Like [`NodeProcess::spawn`], with the node's log (its standard error) appended to `log`
    /// instead of inherited.
    pub fn spawn_logging_to(
        binary: &Path,
        args: &[String],
        timeout: Duration,
        log: Option<&Path>,
    ) -> std::io::Result<Self> {
        let missing = "node did not report its API address in time";
        let (child, ready) = spawn_until(binary, "node", args, log, READY_PREFIX, timeout, missing)?;
        Ok(Self { child, api: ready.value, metrics: ready.metrics })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size (VmHWM) in bytes, read from `/proc`.
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `vellum validator` child process, killed when dropped.
#[derive(Debug)]
pub struct ValidatorProcess {
    child: Child,
    /// Its wallet's address, as it printed it (`0x…`).
    pub address: String,
    /// URL of its metrics endpoint, when started with `--metrics`.
    pub metrics: Option<String>,
}

impl ValidatorProcess {
    /// Starts `binary validator ARGS…` with its log (standard error) appended to `log`, and
    /// waits (up to `timeout`) until it follows the chain.
    pub fn spawn(binary: &Path, args: &[String], log: &Path, timeout: Duration) -> std::io::Result<Self> {
        let missing = format!("the validator did not report its address in time (its log: {})", log.display());
        let (child, ready) = spawn_until(binary, "validator", args, Some(log), VALIDATOR_PREFIX, timeout, &missing)?;
        Ok(Self { child, address: ready.value, metrics: ready.metrics })
    }

    /// A metric's value from its endpoint (None when absent); an error when it serves none.
    pub async fn metric(&self, name: &str) -> anyhow::Result<Option<f64>> {
        let Some(url) = &self.metrics else {
            anyhow::bail!("the validator serves no metrics (start it with --metrics)")
        };
        crate::logs::scrape_metric(&reqwest::Client::new(), url, name).await
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ValidatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a child printed by the time it was ready.
struct Ready {
    /// The rest of the ready line.
    value: String,
    /// The metrics endpoint, when it printed one first.
    metrics: Option<String>,
}

/// Starts `binary SUBCOMMAND ARGS…` (standard error to `log` or inherited) and waits for a line
/// starting with `ready`; its standard output keeps being read (and dropped) after that. Without
/// that line in time, the child is killed and the error says `missing`.
fn spawn_until(
    binary: &Path,
    subcommand: &str,
    args: &[String],
    log: Option<&Path>,
    ready: &'static str,
    timeout: Duration,
    missing: &str,
) -> std::io::Result<(Child, Ready)> {
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
        None => Stdio::inherit(),
    };
    let mut child = Command::new(binary)
        .arg(subcommand)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .stdin(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let mut sent = false;
        let mut metrics = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix(METRICS_PREFIX) {
                metrics = Some(url.trim().to_owned());
            }
            if !sent && let Some(value) = line.strip_prefix(ready) {
                let _ = tx.send(Ready { value: value.trim().to_owned(), metrics: metrics.take() });
                sent = true;
            }
        }
    });
    match rx.recv_timeout(timeout) {
        Ok(ready) => Ok((child, ready)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(std::io::Error::other(missing.to_owned()))
        }
    }
}
