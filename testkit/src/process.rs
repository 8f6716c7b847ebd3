//! Running `vellum node` as a child process: used by `vellum bench` and the integration tests.
//!
//! A node prints one line `REST API at http://ADDR/api/codex/v1` on stdout once it serves; the
//! helper waits for that line, so nodes can use port 0 and run side by side.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The line prefix a node prints when its API is up.
pub const READY_PREFIX: &str = "REST API at ";
/// The line prefix a node prints, before the ready line, when it serves metrics.
pub const METRICS_PREFIX: &str = "Metrics at ";

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
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(binary)
            .arg("node")
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
                if !sent && let Some(url) = line.strip_prefix(READY_PREFIX) {
                    let _ = tx.send((url.trim().to_owned(), metrics.take()));
                    sent = true;
                }
            }
        });
        match rx.recv_timeout(timeout) {
            Ok((api, metrics)) => Ok(Self { child, api, metrics }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(std::io::Error::other("node did not report its API address in time"))
            }
        }
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
