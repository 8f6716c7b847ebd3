//! Reading what processes wrote: log files, metrics endpoints, and waiting for either to say
//! something.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Whether `path` contains `needle`.
pub fn file_contains(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle))
}

/// Polls `check` every 250 ms until it holds or `timeout` passes (an error of `check` counts as
/// "not yet").
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await.unwrap_or(false) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Prints (to stderr) the last `lines` lines of every `*.log` file in `dir`, in name order.
pub fn print_log_tails(dir: &Path, lines: usize) {
    let mut logs: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    logs.retain(|p| p.extension().is_some_and(|e| e == "log"));
    logs.sort();
    for log in logs {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        eprintln!("==== last lines of {} ====", log.display());
        for line in &all[all.len().saturating_sub(lines)..] {
            eprintln!("{line}");
        }
    }
}

/// The value of the sample `name` (without labels) in a Prometheus text exposition.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.split_once(' ').filter(|(k, _)| *k == name).and_then(|(_, v)| v.trim().parse().ok()))
}

/// Fetches a metrics endpoint and reads the sample `name` (None when absent).
pub async fn scrape_metric(http: &reqwest::Client, url: &str, name: &str) -> anyhow::Result<Option<f64>> {
    let text = http.get(url).send().await?.error_for_status()?.text().await?;
    Ok(metric_value(&text, name))
}

#[cfg(test)]
mod tests {
    use super::metric_value;

    #[test]
    fn metric_values_are_read_by_exact_name() {
        let text = "# HELP a_total A.\n# TYPE a_total counter\na_total 3\na_total_created 1.5\nb 2.5\n";
        assert_eq!(metric_value(text, "a_total"), Some(3.0));
        assert_eq!(metric_value(text, "b"), Some(2.5));
        assert_eq!(metric_value(text, "c"), None);
    }
}
