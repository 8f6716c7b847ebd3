//! The README's main job, `vellum devnet`, run to its summary with short periods: it must exit
//! successfully, narrate each stage of the request's life and its repair, and report a file that
//! came back identical, repair that moved less than slot-by-slot repair would have, gas for
//! every kind of call the scenario makes, bandwidth served for pay and paid for, and proofs off
//! the chain costing honest hosts under a tenth of the gas that proofs on chain would. The contracts go up by `vellum deploy`, and every node
//! and the validator start from its deployment file.

use std::process::Command;
use std::time::Duration;

use vellum_testkit::vellum_binary;

#[test]
fn devnet_runs_the_whole_scenario_to_its_summary() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut child = Command::new(vellum_binary())
        .args(["devnet", "--period", "6", "--samples", "5", "--dir"])
        .arg(dir.path().join("devnet"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // The scenario stops by itself; a hang is killed after ten minutes.
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        for log in ["host0", "host2", "spare0", "spare1", "validator"] {
            let text =
                std::fs::read_to_string(dir.path().join("devnet").join(format!("{log}.log"))).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("==== {log}.log (last lines)\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        anyhow::bail!("vellum devnet failed: {}\n{stdout}\n{stderr}", out.status);
    }
    let devnet = dir.path().join("devnet");
    let deployment = contracts::DeploymentFile::read(&devnet.join("deployment.json"))?;
    anyhow::ensure!(deployment.chain_id == 31337, "anvil's chain id: {}", deployment.chain_id);
    for log in ["client", "host0", "validator"] {
        let text = std::fs::read_to_string(devnet.join(format!("{log}.log")))?;
        anyhow::ensure!(
            text.to_lowercase().contains(&format!("{:#x}", deployment.contracts.marketplace)),
            "{log}.log never names the deployment's marketplace"
        );
    }
    for stage in [
        "contracts deployed by vellum deploy",
        "request started: every slot filled",
        "the validator verifies the hosts' proofs off the chain",
        "stop: their slots will miss their proofs",
        "the validator accused",
        "the validator's accusation settled",
        "lost: ",
        "repair opened for slots",
        "repaired by spare",
        "identical to the upload",
    ] {
        anyhow::ensure!(stdout.contains(stage), "the timeline lacks {stage:?}:\n{stdout}");
    }
    // Repair moved (K + L - 1) slots where slot-by-slot repair would move L * K.
    let number = |label: &str| -> Option<u64> {
        let line = stdout.lines().find(|l| l.contains(label))?;
        let after = line.split(label).nth(1)?;
        after.split_whitespace().next()?.replace(',', "").parse().ok()
    };
    let moved = number("bytes moved by repair").unwrap_or(0);
    let per_slot = number("repairing slot by slot would move").unwrap_or(0);
    anyhow::ensure!(moved > 0 && moved < per_slot, "repair moved {moved}, slot by slot {per_slot}:\n{stdout}");
    // Bandwidth is paid for: hosts pay the client for their slots, repairers and the reader pay
    // hosts, and providers redeem the vouchers on chain.
    let served_for_pay = number("bytes served for pay").unwrap_or(0);
    let tokens_paid = number("tokens paid for bandwidth").unwrap_or(0);
    anyhow::ensure!(served_for_pay > 0 && tokens_paid > 0, "no paid bandwidth in the summary:\n{stdout}");
    // At a token a byte, what payers signed is what providers charged: not the allowances too.
    anyhow::ensure!(tokens_paid == served_for_pay, "paid {tokens_paid} tokens for {served_for_pay} bytes:\n{stdout}");
    for call in ["open (bandwidth)", "redeem (bandwidth)"] {
        anyhow::ensure!(stdout.lines().any(|l| l.trim_start().starts_with(call)), "no gas line for {call}:\n{stdout}");
    }
    for call in ["requestStorage", "reserveSlot", "fillSlot", "anchorPeriods", "accuseMissingProof", "settleAccusation"]
    {
        anyhow::ensure!(stdout.lines().any(|l| l.trim_start().starts_with(call)), "no gas line for {call}:\n{stdout}");
    }
    // The economics: honest proving costs a small fraction of what proofs on chain would.
    let off = number("on-chain gas per honest proven slot-period:");
    let on = number("on-chain gas per honest proven slot-period with proofs on chain:");
    anyhow::ensure!(
        matches!((off, on), (Some(off), Some(on)) if on > 100_000 && off * 10 < on),
        "honest proof gas {off:?} against {on:?} on chain:\n{stdout}"
    );
    for line in ["anchoring gas per period:", "accusations: made", "proof gas per TiB-month: $"] {
        anyhow::ensure!(stdout.contains(line), "the summary lacks {line:?}:\n{stdout}");
    }
    Ok(())
}
