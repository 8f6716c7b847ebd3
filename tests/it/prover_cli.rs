//! `vellum prover` from the command line: setup, a proof of a slot on disk, its verification, a
//! tampered proof refused, bad input refused with a message, and the samples helper.

use std::path::Path;
use std::process::{Command, Output};

use vellum_testkit::vellum_binary;

use crate::slot_files::{fr_hex, write_slot};

fn vellum(args: &[&str]) -> Output {
    Command::new(vellum_binary()).args(args).output().expect("run vellum")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn line_after<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines().find_map(|l| l.strip_prefix(prefix)).expect(prefix).trim()
}

#[test]
fn setup_prove_verify_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let keys = d.join("keys");
    let out = vellum(&[
        "prover",
        "setup",
        "--samples",
        "4",
        "--slot-depth",
        "4",
        "--dataset-levels",
        "1",
        "--cell-size",
        "64",
        "--out",
        keys.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "setup: {}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    let (pk, vk) = (line_after(&text, "proving key:").to_owned(), line_after(&text, "verifying key:").to_owned());
    let evm_vk = std::fs::read_to_string(line_after(&text, "verifying key for the EVM verifier:")).expect("evm vk");
    assert!(evm_vk.contains("\"ic\""));

    let roots: Vec<String> = (0..3).map(|i| fr_hex(&write_slot(d, &format!("s{i}"), 4, 64, i as u8))).collect();
    let cells = d.join("s2.cells");
    let tree = d.join("s2.tree");
    let proof_path = d.join("proof.json");
    let prove = |slot: &str, out: &Path| {
        vellum(&[
            "prover",
            "prove",
            "--key",
            &pk,
            "--cells",
            cells.to_str().expect("utf-8"),
            "--tree",
            tree.to_str().expect("utf-8"),
            "--slot-index",
            slot,
            "--slot-roots",
            &roots.join(","),
            "--block-hash",
            "0x00ab",
            "--out",
            out.to_str().expect("utf-8"),
        ])
    };
    let out = prove("2", &proof_path);
    assert!(out.status.success(), "prove: {}", String::from_utf8_lossy(&out.stderr));
    let proof: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&proof_path).expect("proof")).expect("json");
    assert_eq!(proof["proof"]["b"].as_array().map(Vec::len), Some(4));
    assert_eq!(proof["entropy"], "0x00000000000000000000000000000000000000000000000000000000000000ab");

    let verify = |p: &Path| vellum(&["prover", "verify", "--vk", &vk, "--proof", p.to_str().expect("utf-8")]);
    let out = verify(&proof_path);
    assert!(out.status.success() && stdout(&out).contains("valid"), "{}", String::from_utf8_lossy(&out.stderr));

    // The same proof claimed for another slot or another challenge is refused.
    for (field, value) in [("slotIndex", serde_json::json!(1)), ("entropy", serde_json::json!("0xac"))] {
        let mut forged = proof.clone();
        forged[field] = value;
        let path = d.join(format!("forged-{field}.json"));
        std::fs::write(&path, forged.to_string()).expect("write");
        let out = verify(&path);
        assert!(!out.status.success(), "a proof with another {field} verified");
        assert!(String::from_utf8_lossy(&out.stderr).contains("does not verify"));
    }

    // Proving the wrong slot index for these files fails with an explanation, before any work.
    let out = prove("1", &d.join("never.json"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not slot root 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `prover root` reads the root back from the files; a shape that does not fit them is refused.
    let root = |depth: &str| {
        let (c, t) = (cells.to_str().expect("utf-8"), tree.to_str().expect("utf-8"));
        vellum(&["prover", "root", "--cells", c, "--tree", t, "--cell-size", "64", "--slot-depth", depth])
    };
    let out = root("4");
    assert!(out.status.success(), "root: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout(&out).trim(), roots[2]);
    let out = root("3");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cells file holds 1024 bytes"));

    // A damaged key file is refused.
    let mut bytes = std::fs::read(&pk).expect("pk");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&pk, bytes).expect("write");
    let out = prove("2", &d.join("never.json"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("do not hash to its name"));

    let out = vellum(&["prover", "samples", "--lost", "0.05", "--target", "0.01"]);
    assert!(stdout(&out).starts_with("90 samples"), "{}", stdout(&out));
    assert!(!vellum(&["prover", "samples", "--lost", "0", "--target", "0.01"]).status.success());
}
