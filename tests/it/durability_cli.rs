//! `vellum durability` from the command line: the reference's Table 1 as the model computes it,
//! a code for a target with its figures, correlated failures simulated, bad input refused.

use std::process::{Command, Output};

use vellum_testkit::vellum_binary;

fn vellum(args: &[&str]) -> Output {
    Command::new(vellum_binary()).args(args).output().expect("run vellum")
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "vellum failed: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("JSON on stdout")
}

#[test]
fn table_prints_the_reference_cells() {
    let out = vellum(&["durability", "--table"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for cell in ["18+9", "28+14", "7+7", "11+11", "4+6", "8+12"] {
        assert!(text.contains(cell), "{cell} missing from\n{text}");
    }
    let cells = json(&vellum(&["durability", "--table", "--json"]));
    let cells = cells.as_array().expect("an array");
    assert_eq!(cells.len(), 6);
    assert!(cells.iter().all(|c| c["pLoss"].as_f64().is_some_and(|p| p > 0.0 && p <= 1e-9)), "{cells:?}");
}

#[test]
fn a_target_gets_a_code_and_correlated_failures_cost_more() {
    let out = json(&vellum(&["durability", "--loss", "1e-9", "--json"]));
    assert_eq!((out["k"].as_u64(), out["m"].as_u64()), (Some(7), Some(7)), "{out}");
    assert!(out["samplesPerProof"].as_u64().is_some_and(|s| s > 100), "{out}");
    assert_eq!(out["correlated"], serde_json::Value::Null);

    // 3 + 3 at 1e-4; its six slots over two domains that fail whole every five years.
    let out = json(&vellum(&[
        "durability",
        "--loss",
        "1e-4",
        "--domains",
        "2",
        "--domain-mttf",
        "5y",
        "--simulate",
        "100000",
        "--json",
    ]));
    let independent = out["pLoss"].as_f64().expect("pLoss");
    let correlated = &out["correlated"];
    assert_eq!(correlated["domains"], 2, "{out}");
    let low = correlated["ci95"][0].as_f64().expect("ci95");
    assert!(low > 10.0 * independent, "correlated {correlated} vs independent {independent:e}");
}

#[test]
fn bad_input_is_refused_with_a_message() {
    for args in [
        &["durability", "--loss", "0"][..],
        &["durability", "--loss", "1"],
        &["durability", "--expansion", "0.5"],
        &["durability", "--mttf", "-1y"],
        &["durability", "--mttr", "0h"],
        &["durability", "--years", "0"],
        &["durability", "--domains", "2"],
    ] {
        let out = vellum(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(!err.trim().is_empty() && !err.contains("panicked"), "{args:?}: {err}");
    }
}
