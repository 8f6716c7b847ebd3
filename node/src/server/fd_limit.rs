//! The process's open-file limit: raised from its soft value to the hard one at start, since
//! every API connection, peer connection and open dataset holds a descriptor, and the usual soft
//! default (1,024) is reached by a thousand idle HTTP clients.

use rustix::process::{Resource, getrlimit, setrlimit};
use tracing::{info, warn};

const LOG: &str = "vellum::server";

/// Below this many descriptors the node warns at start.
pub const LOW: u64 = 4096;

/// Raises the soft limit on open files to the hard limit; returns the limit now in force
/// (`None` when it is unlimited or cannot be read).
pub fn raise() -> Option<u64> {
    let mut limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            warn!(target: LOG, error = %e, "cannot raise the open-file limit");
            limit.current = before;
        } else {
            info!(target: LOG, from = ?before, to = ?limit.current, "open-file limit raised");
        }
    }
    if let Some(n) = limit.current
        && n < LOW
    {
        warn!(target: LOG, limit = n, "the open-file limit is low; raise it (ulimit -n) to serve many connections");
    }
    limit.current
}

/// The connection bound to use under a descriptor limit: what `wanted` asks for, less a reserve
/// for the node's files and peers.
pub fn connection_bound(wanted: usize, limit: Option<u64>) -> usize {
    match limit {
        Some(n) => wanted.min(usize::try_from(n.saturating_sub(256) / 2).unwrap_or(usize::MAX)).max(16),
        None => wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_leaves_room_for_the_node() {
        assert_eq!(connection_bound(4096, Some(1024)), 384);
        assert_eq!(connection_bound(4096, Some(1_048_576)), 4096);
        assert_eq!(connection_bound(4096, None), 4096);
        assert_eq!(connection_bound(4096, Some(10)), 16);
    }

    #[test]
    fn raising_keeps_the_hard_limit() {
        let hard = getrlimit(Resource::Nofile).maximum;
        assert_eq!(raise(), hard);
    }
}
