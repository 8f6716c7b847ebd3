//! `vellum durability`: from a loss target to erasure parameters, with the model's figures, and
//! `--table` for the reference whitepaper's Table 1 reproduced by Vellum's model; `vellum bench
//! durability` measures the simulator.

use clap::Args;
use durability::model::{self, Params};
use durability::sim::{self, SimParams};

use durability::HOURS_PER_YEAR;

/// Flags of `vellum durability`.
#[derive(Debug, Args)]
pub struct DurabilityArgs {
    /// Largest acceptable probability of losing the dataset over the horizon.
    #[arg(long, default_value_t = 1e-9)]
    pub loss: f64,
    /// The horizon in years.
    #[arg(long, default_value_t = 1.0)]
    pub years: f64,
    /// Mean time to failure of a host (`1y`, `180d`, `24h`, `30m`).
    #[arg(long, default_value = "1y", value_parser = parse_hours)]
    pub mttf: f64,
    /// Mean time to repair once a repair starts.
    #[arg(long, default_value = "24h", value_parser = parse_hours)]
    pub mttr: f64,
    /// Mean time between proofs of a slot.
    #[arg(long, default_value = "24h", value_parser = parse_hours)]
    pub proof_interval: f64,
    /// Storage expansion (K + M) / K.
    #[arg(long, default_value_t = 2.0)]
    pub expansion: f64,
    /// Lazy-repair threshold l0: slots observed lost before a repair starts.
    #[arg(long, default_value_t = 1)]
    pub repair_threshold: u32,
    /// Consecutive missed proofs after which a slot counts as lost.
    #[arg(long, default_value_t = 1)]
    pub max_missed_proofs: u32,
    /// Fraction of a slot's cells lost in a partial loss that each proof must catch.
    #[arg(long, default_value_t = 0.05)]
    pub cell_loss: f64,
    /// Correlated failures (simulated; the chain assumes independent hosts): spread the chosen
    /// code's slots round-robin over this many failure domains (hosts sharing a site, a provider
    /// or an operator), each of which fails whole once per --domain-mttf.
    #[arg(long, value_name = "N", requires = "domain_mttf")]
    pub domains: Option<u32>,
    /// Mean time to failure of a whole failure domain (with --domains).
    #[arg(long, value_name = "DURATION", value_parser = parse_hours, requires = "domains")]
    pub domain_mttf: Option<f64>,
    /// Datasets simulated for --domains (each over the horizon).
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub simulate: u64,
    /// Print the reference whitepaper's Table 1 as Vellum's model computes it.
    #[arg(long)]
    pub table: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `vellum bench durability`.
#[derive(Debug, Args)]
pub struct BenchDurabilityArgs {
    /// Dataset-years to simulate.
    #[arg(long, default_value_t = 10_000_000)]
    pub datasets: u64,
    /// Threads.
    #[arg(long, default_value_t = 2)]
    pub threads: u32,
}

/// Parses `1y`, `180d`, `24h`, `30m`, `45s` or a bare number of hours.
pub(crate) fn parse_hours(text: &str) -> Result<f64, String> {
    durability::parse_hours(text)
}

fn base(args: &DurabilityArgs) -> Params {
    Params {
        k: 1,
        m: 1,
        mttf_hours: args.mttf,
        mttr_hours: args.mttr,
        mtbp_hours: args.proof_interval,
        repair_threshold: args.repair_threshold,
        max_missed: args.max_missed_proofs,
        horizon_hours: args.years * HOURS_PER_YEAR,
    }
}

/// Slots rebuilt and slot-sized transfers per dataset-year under `params`, simulated.
fn repair_traffic(params: &Params) -> anyhow::Result<(f64, f64)> {
    let sim = SimParams::from(params);
    let out = sim::simulate_parallel(&sim, 20_000, 1, 2)?;
    Ok((out.rebuilt_per_year(), out.traffic_per_year()))
}

/// Runs `vellum durability`.
pub(crate) fn run(args: DurabilityArgs) -> anyhow::Result<()> {
    if args.table {
        return table(args.json);
    }
    if !(args.years.is_finite() && args.years > 0.0) {
        anyhow::bail!("--years must be positive");
    }
    let base = base(&args);
    let (k, m, p_loss) = model::smallest_code(args.expansion, args.loss, &base)?;
    let chosen = Params { k, m, ..base };
    let samples = model::samples_for(args.cell_loss, args.loss)?;
    let (lazy_rebuilt, lazy_traffic) = repair_traffic(&chosen)?;
    let eager = Params { repair_threshold: 1, ..chosen };
    let (eager_rebuilt, eager_traffic) = repair_traffic(&eager)?;
    let overhead = f64::from(k + m) / f64::from(k);
    let correlated = match (args.domains, args.domain_mttf) {
        (Some(domains), Some(domain_mttf)) => {
            let sim = SimParams { domains, domain_mttf_hours: domain_mttf, ..SimParams::from(&chosen) };
            Some((domains, domain_mttf, sim::simulate_parallel(&sim, args.simulate.max(1), 1, 2)?))
        }
        _ => None,
    };
    if args.json {
        let out = serde_json::json!({
            "k": k, "m": m, "pLoss": p_loss, "target": args.loss, "years": args.years,
            "samplesPerProof": samples, "cellLoss": args.cell_loss, "overhead": overhead,
            "repairThreshold": args.repair_threshold,
            "repair": {
                "lazy": {"slotsRebuiltPerYear": lazy_rebuilt, "slotTransfersPerYear": lazy_traffic},
                "eager": {"slotsRebuiltPerYear": eager_rebuilt, "slotTransfersPerYear": eager_traffic},
            },
            "correlated": correlated.as_ref().map(|(domains, mttf, o)| serde_json::json!({
                "domains": domains, "domainMttfHours": mttf, "datasets": o.datasets, "losses": o.losses,
                "pLoss": o.p_loss, "ci95": [o.ci95.0, o.ci95.1],
            })),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("target: p_loss ≤ {:.1e} over {} year(s)", args.loss, args.years);
    println!("code:   K = {k}, M = {m} ({} slots), p_loss = {p_loss:.2e}", k + m);
    println!("storage overhead: {overhead:.2}×");
    println!(
        "samples per proof: {samples} (a slot missing {:.1} % of its cells is caught with probability ≥ 1 − {:.1e})",
        args.cell_loss * 100.0,
        args.loss
    );
    println!(
        "repair per dataset-year (simulated): lazy l0 = {}: {lazy_rebuilt:.2} slots rebuilt, {lazy_traffic:.1} slot transfers; eager l0 = 1: {eager_rebuilt:.2} rebuilt, {eager_traffic:.1} transfers",
        args.repair_threshold
    );
    if let Some((domains, mttf, o)) = correlated {
        println!(
            "correlated (simulated): slots over {domains} failure domain(s), each lost whole once per {mttf:.0} h: \
             {} of {} datasets lost, p_loss ≈ {:.2e} (95 %: {:.2e} to {:.2e}) against {p_loss:.2e} independent",
            o.losses, o.datasets, o.p_loss, o.ci95.0, o.ci95.1
        );
    }
    Ok(())
}

/// The reference's Table 1: MTTF 1 year, MTTR 24 h, a proof every 24 h, p_loss ≤ 10^-9 in a year.
fn table(json: bool) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for expansion in [1.5, 2.0, 2.5] {
        let mut cells = Vec::new();
        for l0 in [1, 5] {
            let base = Params::reference(1, 1, l0);
            let (k, m, p) = model::smallest_code(expansion, 1e-9, &base)?;
            cells.push((l0, k, m, p));
        }
        rows.push((expansion, cells));
    }
    if json {
        let out: Vec<_> = rows
            .iter()
            .flat_map(|(e, cells)| {
                cells.iter().map(move |(l0, k, m, p)| {
                    serde_json::json!({"expansion": e, "repairThreshold": l0, "k": k, "m": m, "pLoss": p})
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("smallest K+M with p_loss ≤ 1e-9 in a year (MTTF 1 y, MTTR 24 h, a proof every 24 h)");
    println!("| expansion | l0 = 1 | l0 = 5 |");
    println!("|---|---|---|");
    for (e, cells) in &rows {
        let cell = |(_, k, m, p): &(u32, u32, u32, f64)| format!("{k}+{m} ({p:.1e})");
        println!("| {e} | {} | {} |", cell(&cells[0]), cell(&cells[1]));
    }
    Ok(())
}

/// Runs `vellum bench durability`: simulated dataset-years per second.
pub(crate) fn bench(args: BenchDurabilityArgs) -> anyhow::Result<()> {
    let params = SimParams { k: 5, m: 5, ..SimParams::default() };
    let started = std::time::Instant::now();
    let out = sim::simulate_parallel(&params, args.datasets.max(1), 1, args.threads.max(1))?;
    let secs = started.elapsed().as_secs_f64();
    println!("| dataset-years | threads | seconds | dataset-years/s | losses | slots rebuilt/year |");
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {secs:.2} | {:.0} | {} | {:.2} |",
        out.datasets,
        args.threads,
        out.years / secs,
        out.losses,
        out.rebuilt_per_year()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_hours() {
        assert_eq!(parse_hours("24h"), Ok(24.0));
        assert_eq!(parse_hours("1y"), Ok(8760.0));
        assert_eq!(parse_hours("2d"), Ok(48.0));
        assert_eq!(parse_hours("30m"), Ok(0.5));
        assert_eq!(parse_hours("12"), Ok(12.0));
        for bad in ["", "0h", "-1d", "1w", "h", "nan"] {
            assert!(parse_hours(bad).is_err(), "{bad}");
        }
    }
}
