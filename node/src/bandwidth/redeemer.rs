//! The provider's redeemer: a supervised task that redeems the vouchers it holds on chain when
//! a channel's unredeemed amount passes the threshold, and at once when the payer asks to close
//! the channel (found by reading the channels it holds unredeemed vouchers on; the payer can
//! only reclaim after the close delay, so a provider that is up within it loses nothing).

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, error, info, warn};

use super::gate::Gate;

const LOG: &str = "vellum::bandwidth::redeemer";
/// How often the redeemer looks.
const TICK: Duration = Duration::from_secs(1);
/// Channels read per look for a close request.
const READS_PER_TICK: usize = 64;

/// Starts the redeemer; it runs as long as the node (a panic is logged and it starts again).
pub fn spawn(gate: Arc<Gate>) {
    tokio::spawn(async move {
        loop {
            let g = Arc::clone(&gate);
            match tokio::spawn(run(g)).await {
                Ok(()) => warn!(target: LOG, "redeemer ended; starting it again"),
                Err(e) => error!(target: LOG, error = %e, "redeemer failed; starting it again"),
            }
            tokio::time::sleep(TICK).await;
        }
    });
}

async fn run(gate: Arc<Gate>) {
    let mut turn = 0usize;
    loop {
        tokio::time::sleep(TICK).await;
        // Watch for close requests, a bounded number of channels per look, in turn.
        let watched = gate.unredeemed();
        if !watched.is_empty() {
            for i in 0..watched.len().min(READS_PER_TICK) {
                let id = watched[(turn + i) % watched.len()];
                match gate.channels().channel(id).await {
                    Ok(Some(info)) => gate.refreshed(id, info),
                    Ok(None) => {}
                    Err(e) => debug!(target: LOG, channel = %id, error = %e, "could not read a channel"),
                }
            }
            turn = turn.wrapping_add(READS_PER_TICK);
        }
        gate.persist_if_dirty().await;
        for (id, cumulative, signature) in gate.to_redeem() {
            match gate.channels().redeem(id, cumulative, signature).await {
                Ok(()) => {
                    info!(target: LOG, channel = %id, %cumulative, "voucher redeemed");
                    gate.redeemed(id, cumulative);
                }
                Err(e) => {
                    warn!(target: LOG, channel = %id, %cumulative, error = %e, "could not redeem a voucher");
                    gate.redeem_failed(id);
                    // What the chain holds now decides whether to try again.
                    if let Ok(Some(info)) = gate.channels().channel(id).await {
                        gate.refreshed(id, info);
                    }
                }
            }
        }
    }
}
