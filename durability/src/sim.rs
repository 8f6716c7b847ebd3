//! The Monte-Carlo churn simulator: one dataset of n = K + M slots, each on a host, run event by
//! event over a horizon, many times, counting the datasets lost and the repair traffic.
//!
//! # The system simulated
//!
//! - **Host failures.** Each healthy slot's host fails after an exponential time with mean
//!   [`SimParams::mttf_hours`]; the slot is then *lost* but not yet known lost.
//! - **Detection by proofs.** A lost slot becomes *observed lost* once proofs have missed it
//!   [`SimParams::max_missed`] times in a row. Two proof timings:
//!   - exponential (`deterministic_proofs: false`, the default): the delay from loss to
//!     observation is the sum of `max_missed` independent exponential stages of mean
//!     [`SimParams::mtbp_hours`] (an Erlang delay: proofs as a Poisson process of mean interval
//!     MTBP, one stage per missed proof);
//!   - deterministic (`deterministic_proofs: true`): every slot is proven on the fixed grid
//!     t = j·MTBP (j = 1, 2, …), shared by the dataset's slots; a slot lost at time t misses
//!     the grid points after t, and is observed at the `max_missed`-th of them,
//!     (⌊t / MTBP⌋ + max_missed)·MTBP.
//! - **Lazy repair.** Once the count of observed-lost slots reaches l0
//!   ([`SimParams::repair_threshold`]), a repair starts; after an exponential time with mean
//!   [`SimParams::mttr_hours`] it restores *all* lost slots, observed or not, and the dataset is
//!   whole again. Losses and observations go on while the repair runs.
//! - **Loss.** The dataset is lost the moment more than M slots are lost at once.
//! - **Correlated failures** (optional). With [`SimParams::domains`] = D > 0, slot i lies in
//!   failure domain i mod D (round-robin); each domain fails at rate 1 / `domain_mttf_hours`
//!   and takes down the hosts of all its slots at once (those still healthy become lost, each
//!   with its own detection delay), on top of the independent host failures.
//! - **Repair traffic.** Each repair rebuilds every lost slot, reading K slots: it adds K to
//!   [`SimOutcome::slot_reads`] and the number of lost slots to [`SimOutcome::slots_rebuilt`].
//!
//! # The Markov chain it corresponds to
//!
//! With exponential detection, `max_missed = 1` and no failure domains, the simulator is an
//! exact sample path of the continuous-time Markov chain of the reference's whitepaper (and of
//! [`crate::model`] with one missed proof): states (l, f), l slots lost of which f are observed
//! lost (f ≤ l ≤ M); from (l, f)
//! - a slot is lost at rate (n − l) / MTTF: (l, f) → (l + 1, f);
//! - a loss is observed at rate (l − f) / MTBP: (l, f) → (l, f + 1);
//! - once f ≥ l0, the repair completes at rate 1 / MTTR: (l, f) → (0, 0);
//! - l = M + 1 absorbs (the dataset is lost).
//!
//! With `max_missed` = r > 1 each unobserved loss passes through r exponential stages of rate
//! 1 / MTBP before it is observed: the chain with Erlang(r, 1/MTBP) detection, i.e. states that
//! also count how many unobserved losses sit at each stage. [`SimOutcome::p_loss`] is the
//! probability of absorption within [`SimParams::horizon_hours`], starting from (0, 0).
//!
//! # The method
//!
//! Event-driven: from the current time, the next event is the earliest of the next host
//! failure (an exponential clock of rate (n − l) / MTTF, resampled after every event, which the
//! memorylessness allows), the next domain failure (rate D / domain MTTF), the earliest
//! pending observation (each lost slot carries its own observation time) and the repair's
//! completion. Exponentials are sampled by inverse transform, −mean·ln U with U uniform on
//! (0, 1]. Each dataset runs until it is lost or reaches the horizon. The state is two arrays of
//! n entries allocated once per run (per thread), so the inner loop allocates nothing. A run is
//! deterministic given its seed ([`SmallRng`] seeded by it).

use crate::ParamError;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Hours in a year (365.25 days), to report dataset-years.
pub const HOURS_PER_YEAR: f64 = 8766.0;

/// The most slots a dataset may have in the simulator.
pub const MAX_SLOTS: u32 = 4096;

/// The most consecutive missed proofs the simulator accepts before a slot is observed lost.
pub const MAX_MISSED: u32 = 1000;

/// The simulated system's parameters (times in hours).
#[derive(Debug, Clone, PartialEq)]
pub struct SimParams {
    /// K: data slots (a dataset is readable from any K of its K + M slots); at least 1.
    pub k: u32,
    /// M: parity slots; the dataset is lost when more than M slots are lost at once.
    pub m: u32,
    /// Mean time to failure of one slot's host (independent failures); positive, may be
    /// infinite (no independent failures).
    pub mttf_hours: f64,
    /// Mean time a repair takes once started; positive and finite.
    pub mttr_hours: f64,
    /// Mean time between proofs (the fixed proof interval with `deterministic_proofs`);
    /// positive and finite.
    pub mtbp_hours: f64,
    /// l0: a repair starts once this many slots are observed lost; 1 ≤ l0 ≤ M + 1 (l0 = M + 1
    /// never repairs in time).
    pub repair_threshold: u32,
    /// Consecutive missed proofs after which a lost slot is observed lost; 1 to [`MAX_MISSED`].
    pub max_missed: u32,
    /// The horizon over which each dataset runs; positive and finite.
    pub horizon_hours: f64,
    /// Proofs on the fixed grid t = j·MTBP rather than exponential stages (see the module
    /// documentation).
    pub deterministic_proofs: bool,
    /// Failure domains (0: none); slot i lies in domain i mod `domains`.
    pub domains: u32,
    /// Mean time to failure of a whole domain (ignored when `domains` is 0); positive, may be
    /// infinite.
    pub domain_mttf_hours: f64,
}

impl From<&crate::model::Params> for SimParams {
    /// The system the Markov model describes: exponential proofs, independent failures.
    fn from(p: &crate::model::Params) -> Self {
        Self {
            k: p.k,
            m: p.m,
            mttf_hours: p.mttf_hours,
            mttr_hours: p.mttr_hours,
            mtbp_hours: p.mtbp_hours,
            repair_threshold: p.repair_threshold,
            max_missed: p.max_missed,
            horizon_hours: p.horizon_hours,
            deterministic_proofs: false,
            domains: 0,
            domain_mttf_hours: f64::INFINITY,
        }
    }
}

impl Default for SimParams {
    /// The reference's setting: 7 + 7 slots, MTTF 1 year, MTTR 24 h, MTBP 24 h, l0 = 1, one
    /// missed proof, a one-year horizon, exponential proofs, no failure domains.
    fn default() -> Self {
        SimParams {
            k: 7,
            m: 7,
            mttf_hours: HOURS_PER_YEAR,
            mttr_hours: 24.0,
            mtbp_hours: 24.0,
            repair_threshold: 1,
            max_missed: 1,
            horizon_hours: HOURS_PER_YEAR,
            deterministic_proofs: false,
            domains: 0,
            domain_mttf_hours: f64::INFINITY,
        }
    }
}

fn out_of_range(name: &'static str, value: f64, reason: &'static str) -> ParamError {
    ParamError::OutOfRange { name, value, reason }
}

/// A mean time that must be positive, and finite unless `infinite_ok`.
fn check_mean(name: &'static str, value: f64, infinite_ok: bool) -> Result<(), ParamError> {
    if value.is_nan() || value <= 0.0 {
        return Err(out_of_range(name, value, "must be a positive number of hours"));
    }
    if !infinite_ok && value.is_infinite() {
        return Err(out_of_range(name, value, "must be finite"));
    }
    Ok(())
}

impl SimParams {
    /// n = K + M, the dataset's slots.
    pub fn slots(&self) -> u32 {
        self.k.saturating_add(self.m)
    }

    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ParamError> {
        if self.k == 0 {
            return Err(out_of_range("k", 0.0, "must be at least 1"));
        }
        if self.slots() > MAX_SLOTS {
            return Err(out_of_range("k + m", f64::from(self.k) + f64::from(self.m), "must be at most 4096"));
        }
        check_mean("mttf_hours", self.mttf_hours, true)?;
        check_mean("mttr_hours", self.mttr_hours, false)?;
        check_mean("mtbp_hours", self.mtbp_hours, false)?;
        check_mean("horizon_hours", self.horizon_hours, false)?;
        if self.repair_threshold == 0 || self.repair_threshold > self.m + 1 {
            return Err(out_of_range(
                "repair_threshold",
                f64::from(self.repair_threshold),
                "must be between 1 and m + 1",
            ));
        }
        if self.max_missed == 0 || self.max_missed > MAX_MISSED {
            return Err(out_of_range("max_missed", f64::from(self.max_missed), "must be between 1 and 1000"));
        }
        if self.domains > 0 {
            if self.domains > self.slots() {
                return Err(out_of_range("domains", f64::from(self.domains), "must be at most k + m"));
            }
            check_mean("domain_mttf_hours", self.domain_mttf_hours, true)?;
        }
        Ok(())
    }
}

/// What a simulation found.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOutcome {
    /// Datasets simulated.
    pub datasets: u64,
    /// Dataset-years simulated nominally: datasets × horizon (a lost dataset's run stops early).
    pub years: f64,
    /// Datasets lost within the horizon.
    pub losses: u64,
    /// The estimated probability of loss within the horizon, losses / datasets.
    pub p_loss: f64,
    /// The Wilson score interval at 95 % around `p_loss`.
    pub ci95: (f64, f64),
    /// Repairs completed.
    pub repairs: u64,
    /// Slots rebuilt by those repairs (every lost slot at the time of each).
    pub slots_rebuilt: u64,
    /// Slots read by those repairs (K per repair).
    pub slot_reads: u64,
}

impl SimOutcome {
    /// Repair traffic in slot-units per dataset-year: slots read plus slots written.
    pub fn traffic_per_year(&self) -> f64 {
        if self.years > 0.0 { (self.slot_reads + self.slots_rebuilt) as f64 / self.years } else { 0.0 }
    }

    /// Slots rebuilt per dataset-year.
    pub fn rebuilt_per_year(&self) -> f64 {
        if self.years > 0.0 { self.slots_rebuilt as f64 / self.years } else { 0.0 }
    }
}

/// The Wilson score interval at 95 % (z = 1.96) for `successes` out of `trials` (`(0, 1)` when
/// `trials` is 0).
pub fn wilson95(successes: u64, trials: u64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let z = 1.96_f64;
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2n = z * z / n;
    let denom = 1.0 + z2n;
    let center = (p + z2n / 2.0) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2n / (4.0 * n)).sqrt();
    let lo = if successes == 0 { 0.0 } else { (center - half).max(0.0) };
    let hi = if successes == trials { 1.0 } else { (center + half).min(1.0) };
    (lo, hi)
}

/// Raw counts of one run, summed across threads.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    losses: u64,
    repairs: u64,
    slots_rebuilt: u64,
    slot_reads: u64,
}

/// A slot is healthy (or already observed lost) when its observation time is this.
const NONE: f64 = f64::INFINITY;

/// One thread's simulator: the parameters it needs and its reusable state.
struct Runner {
    n: usize,
    m: u32,
    k: u64,
    l0: u32,
    inv_mttf: f64,
    mttr: f64,
    mtbp: f64,
    max_missed: u32,
    horizon: f64,
    grid: bool,
    domains: usize,
    domain_rate: f64,
    /// Whether each slot is lost.
    lost: Vec<bool>,
    /// Each lost, not yet observed slot's observation time ([`NONE`] otherwise).
    observe_at: Vec<f64>,
    rng: SmallRng,
}

impl Runner {
    fn new(p: &SimParams, seed: u64) -> Self {
        let n = p.slots() as usize;
        let domain_rate = if p.domains > 0 { f64::from(p.domains) / p.domain_mttf_hours } else { 0.0 };
        Runner {
            n,
            m: p.m,
            k: u64::from(p.k),
            l0: p.repair_threshold,
            inv_mttf: 1.0 / p.mttf_hours,
            mttr: p.mttr_hours,
            mtbp: p.mtbp_hours,
            max_missed: p.max_missed,
            horizon: p.horizon_hours,
            grid: p.deterministic_proofs,
            domains: p.domains as usize,
            domain_rate,
            lost: vec![false; n],
            observe_at: vec![NONE; n],
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// A uniform on (0, 1].
    #[inline]
    fn unit(&mut self) -> f64 {
        1.0 - self.rng.random::<f64>()
    }

    /// An exponential of the given rate (infinite at rate 0), by inverse transform.
    #[inline]
    fn exp_rate(&mut self, rate: f64) -> f64 {
        if rate > 0.0 { -self.unit().ln() / rate } else { f64::INFINITY }
    }

    /// When a slot lost at `t` will be observed lost.
    #[inline]
    fn observation_time(&mut self, t: f64) -> f64 {
        if self.grid {
            ((t / self.mtbp).floor() + f64::from(self.max_missed)) * self.mtbp
        } else {
            let mut delay = 0.0;
            for _ in 0..self.max_missed {
                delay -= self.unit().ln();
            }
            t + delay * self.mtbp
        }
    }

    /// Marks slot `i` lost at `t`.
    #[inline]
    fn lose(&mut self, i: usize, t: f64) {
        self.lost[i] = true;
        self.observe_at[i] = self.observation_time(t);
    }

    /// Runs one dataset over the horizon, adding to `c`.
    fn dataset(&mut self, c: &mut Counts) {
        self.lost.fill(false);
        self.observe_at.fill(NONE);
        let n = self.n;
        let mut t = 0.0_f64;
        let mut lost: u32 = 0;
        let mut observed: u32 = 0;
        let mut repair_at = f64::INFINITY;
        loop {
            let healthy = n as u32 - lost;
            let fail_at = t + self.exp_rate(f64::from(healthy) * self.inv_mttf);
            let domain_at = t + self.exp_rate(self.domain_rate);
            // The earliest pending observation.
            let mut obs_at = NONE;
            let mut obs_slot = 0;
            if lost > observed {
                for (i, &at) in self.observe_at.iter().enumerate() {
                    if at < obs_at {
                        obs_at = at;
                        obs_slot = i;
                    }
                }
            }
            let next = fail_at.min(domain_at).min(obs_at).min(repair_at);
            if next >= self.horizon {
                return;
            }
            t = next;
            if next == repair_at {
                c.repairs += 1;
                c.slots_rebuilt += u64::from(lost);
                c.slot_reads += self.k;
                self.lost.fill(false);
                self.observe_at.fill(NONE);
                lost = 0;
                observed = 0;
                repair_at = f64::INFINITY;
                continue;
            }
            if next == obs_at {
                self.observe_at[obs_slot] = NONE;
                observed += 1;
            } else if next == fail_at {
                // The r-th healthy slot fails, r uniform.
                let r = self.rng.random_range(0..healthy);
                let mut seen = 0;
                for i in 0..n {
                    if !self.lost[i] {
                        if seen == r {
                            self.lose(i, t);
                            break;
                        }
                        seen += 1;
                    }
                }
                lost += 1;
            } else {
                // A whole domain fails: its healthy slots are lost.
                let d = self.rng.random_range(0..self.domains);
                let mut i = d;
                while i < n {
                    if !self.lost[i] {
                        self.lose(i, t);
                        lost += 1;
                    }
                    i += self.domains;
                }
            }
            if lost > self.m {
                c.losses += 1;
                return;
            }
            if observed >= self.l0 && repair_at.is_infinite() {
                repair_at = t + self.exp_rate(1.0 / self.mttr);
            }
        }
    }
}

/// Runs `datasets` datasets on one thread from `seed`.
fn run(params: &SimParams, datasets: u64, seed: u64) -> Counts {
    let mut runner = Runner::new(params, seed);
    let mut c = Counts::default();
    for _ in 0..datasets {
        runner.dataset(&mut c);
    }
    c
}

fn outcome(params: &SimParams, datasets: u64, c: Counts) -> SimOutcome {
    SimOutcome {
        datasets,
        years: datasets as f64 * params.horizon_hours / HOURS_PER_YEAR,
        losses: c.losses,
        p_loss: c.losses as f64 / datasets as f64,
        ci95: wilson95(c.losses, datasets),
        repairs: c.repairs,
        slots_rebuilt: c.slots_rebuilt,
        slot_reads: c.slot_reads,
    }
}

fn check_datasets(datasets: u64) -> Result<(), ParamError> {
    if datasets == 0 {
        return Err(out_of_range("datasets", 0.0, "must be at least 1"));
    }
    Ok(())
}

/// Simulates `datasets` datasets, each over the horizon, on the calling thread; deterministic
/// given `seed`.
pub fn simulate(params: &SimParams, datasets: u64, seed: u64) -> Result<SimOutcome, ParamError> {
    params.validate()?;
    check_datasets(datasets)?;
    Ok(outcome(params, datasets, run(params, datasets, seed)))
}

/// The seed of thread `i` of a parallel run: thread 0 uses `seed` itself (so one thread gives
/// [`simulate`]'s answer), the others a mix of it.
fn thread_seed(seed: u64, i: u64) -> u64 {
    if i == 0 {
        return seed;
    }
    // splitmix64 of seed + i·γ.
    let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// [`simulate`] split across `threads` threads (at most one per dataset), each with its own RNG
/// seeded from `seed` and its index, the outcomes summed; deterministic given `seed` and
/// `threads`, and equal to [`simulate`] with one thread.
pub fn simulate_parallel(params: &SimParams, datasets: u64, seed: u64, threads: u32) -> Result<SimOutcome, ParamError> {
    params.validate()?;
    check_datasets(datasets)?;
    if threads == 0 {
        return Err(out_of_range("threads", 0.0, "must be at least 1"));
    }
    let threads = u64::from(threads).min(datasets);
    let share = datasets / threads;
    let extra = datasets % threads;
    let total = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let count = share + u64::from(i < extra);
                let seed = thread_seed(seed, i);
                s.spawn(move || run(params, count, seed))
            })
            .collect();
        let mut total = Counts::default();
        for h in handles {
            // A worker cannot panic short of a bug; if one does, propagate it.
            let c = match h.join() {
                Ok(c) => c,
                Err(e) => std::panic::resume_unwind(e),
            };
            total.losses += c.losses;
            total.repairs += c.repairs;
            total.slots_rebuilt += c.slots_rebuilt;
            total.slot_reads += c.slot_reads;
        }
        total
    });
    Ok(outcome(params, datasets, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> SimParams {
        // Losses around a few per cent a year: 4 + 2 slots, MTTF 1 year, MTBP and MTTR 24 h.
        SimParams { k: 4, m: 2, ..SimParams::default() }
    }

    fn p(params: &SimParams, datasets: u64) -> SimOutcome {
        simulate(params, datasets, 7).expect("valid")
    }

    #[test]
    fn deterministic_by_seed() {
        let a = simulate(&base(), 2000, 42).expect("valid");
        let b = simulate(&base(), 2000, 42).expect("valid");
        assert_eq!(a, b);
        let c = simulate(&base(), 2000, 43).expect("valid");
        assert_ne!(a.repairs, c.repairs);
        let pa = simulate_parallel(&base(), 2001, 42, 3).expect("valid");
        let pb = simulate_parallel(&base(), 2001, 42, 3).expect("valid");
        assert_eq!(pa, pb);
        assert_eq!(pa.datasets, 2001);
        assert_eq!(simulate_parallel(&base(), 2000, 42, 1).expect("valid"), a);
    }

    #[test]
    fn no_failures_no_loss() {
        let params = SimParams { mttf_hours: f64::INFINITY, ..base() };
        let o = p(&params, 1000);
        assert_eq!((o.losses, o.repairs, o.slots_rebuilt), (0, 0, 0));
        assert_eq!(o.ci95.0, 0.0);
        let params = SimParams { mttf_hours: 1e12, ..base() };
        assert_eq!(p(&params, 1000).losses, 0);
    }

    #[test]
    fn many_parity_slots_no_loss() {
        let params = SimParams { k: 2, m: 30, ..base() };
        let o = p(&params, 2000);
        assert_eq!(o.losses, 0);
        assert!(o.repairs > 0);
    }

    #[test]
    fn single_slot_matches_exponential() {
        // n = 1, M = 0: the dataset is lost at its host's first failure.
        let params = SimParams { k: 1, m: 0, horizon_hours: HOURS_PER_YEAR / 4.0, ..base() };
        let o = p(&params, 20_000);
        let exact = 1.0 - (-0.25_f64).exp();
        let (lo, hi) = wilson95(o.losses, o.datasets);
        let slack = (hi - lo) / 2.0; // accept 2 half-widths (about 4 sigma)
        assert!((o.p_loss - exact).abs() < 2.0 * slack, "{o:?} vs {exact}");
    }

    #[test]
    fn loss_rises_as_mttf_falls_and_mttr_rises() {
        let d = 20_000;
        let p_mttf = |y: f64| p(&SimParams { mttf_hours: y * HOURS_PER_YEAR, ..base() }, d).p_loss;
        let (a, b, c) = (p_mttf(4.0), p_mttf(1.0), p_mttf(0.5));
        assert!(a < b && b < c, "{a} {b} {c}");
        let p_mttr = |h: f64| p(&SimParams { mttr_hours: h, ..base() }, d).p_loss;
        let (a, b, c) = (p_mttr(6.0), p_mttr(24.0), p_mttr(96.0));
        assert!(a < b && b < c, "{a} {b} {c}");
    }

    #[test]
    fn eager_fast_repair_loses_less_than_lazy() {
        let eager = SimParams { repair_threshold: 1, mttr_hours: 1.0, ..base() };
        let lazy = SimParams { repair_threshold: 2, ..base() };
        let (e, l) = (p(&eager, 20_000), p(&lazy, 20_000));
        assert!(e.losses * 5 < l.losses, "{e:?} {l:?}");
        assert!(e.ci95.1 < l.ci95.0);
        // Lazy repair rebuilds more slots per repair, so fewer reads per slot rebuilt.
        let per = |o: &SimOutcome| o.slot_reads as f64 / o.slots_rebuilt as f64;
        assert!(per(&l) < per(&e));
    }

    #[test]
    fn one_domain_loses_far_more_than_independent() {
        // Equal per-slot failure rate: 1 / MTTF independently, or 1 / MTTF through one domain.
        let independent = SimParams { k: 4, m: 4, ..base() };
        let correlated = SimParams {
            mttf_hours: f64::INFINITY,
            domains: 1,
            domain_mttf_hours: HOURS_PER_YEAR,
            ..independent.clone()
        };
        let (i, c) = (p(&independent, 5000), p(&correlated, 5000));
        assert!(c.p_loss > 0.5, "{c:?}");
        assert!(c.losses > 20 * i.losses.max(1), "{i:?} {c:?}");
        // Round-robin domains, one per slot, behave like independent failures.
        let per_slot = SimParams { domains: 8, ..correlated };
        let ps = p(&per_slot, 5000);
        assert!(ps.losses < 10 * i.losses.max(1) + 10, "{i:?} {ps:?}");
    }

    #[test]
    fn missed_proof_tolerance_and_grid() {
        let one = base();
        let three = SimParams { max_missed: 3, ..base() };
        let (a, b) = (p(&one, 20_000), p(&three, 20_000));
        assert!(a.losses < b.losses, "{a:?} {b:?}");
        let grid = SimParams { deterministic_proofs: true, ..base() };
        let g = p(&grid, 20_000);
        assert!(g.losses > 0 && g.repairs > 0);
        assert_eq!(g, p(&grid, 20_000));
    }

    /// p_loss of the (l, f) chain of the module documentation (max_missed = 1, no domains) at
    /// the horizon, by uniformisation in chunks short enough for the Poisson weights.
    fn chain_p_loss(q: &SimParams) -> f64 {
        let (n, m) = (f64::from(q.slots()), q.m as usize);
        let mut states = Vec::new();
        for l in 0..=m {
            for f in 0..=l {
                states.push((l, f));
            }
        }
        let lost = states.len();
        let index = |l: usize, f: usize| states.iter().position(|&s| s == (l, f));
        // Rows of (target, rate).
        let mut out: Vec<Vec<(usize, f64)>> = vec![Vec::new(); lost + 1];
        for (i, &(l, f)) in states.iter().enumerate() {
            let fail = (n - l as f64) / q.mttf_hours;
            out[i].push((index(l + 1, f).unwrap_or(lost), fail));
            if l > f {
                out[i].push((index(l, f + 1).expect("state"), (l - f) as f64 / q.mtbp_hours));
            }
            if f >= q.repair_threshold as usize {
                out[i].push((0, 1.0 / q.mttr_hours));
            }
        }
        let exit = |i: usize| out[i].iter().map(|&(_, r)| r).sum::<f64>();
        let rate = (0..=lost).map(exit).fold(0.0, f64::max) * 1.01;
        let chunks = (rate * q.horizon_hours / 20.0).ceil().max(1.0);
        let lh = rate * q.horizon_hours / chunks;
        let step = |v: &[f64]| {
            let mut w = vec![0.0; v.len()];
            for (i, &x) in v.iter().enumerate() {
                w[i] += x * (1.0 - exit(i) / rate);
                for &(j, r) in &out[i] {
                    w[j] += x * r / rate;
                }
            }
            w
        };
        let mut v = vec![0.0; lost + 1];
        v[0] = 1.0;
        for _ in 0..chunks as u64 {
            let mut term = v.clone();
            let mut weight = (-lh).exp();
            let mut acc: Vec<f64> = term.iter().map(|x| x * weight).collect();
            let mut total = weight;
            let mut k = 0.0;
            while total < 1.0 - 1e-14 && k < 500.0 {
                k += 1.0;
                term = step(&term);
                weight *= lh / k;
                total += weight;
                for (a, t) in acc.iter_mut().zip(&term) {
                    *a += t * weight;
                }
            }
            v = acc;
        }
        v[lost]
    }

    #[test]
    fn agrees_with_the_chain() {
        let sets = [
            base(),
            SimParams { repair_threshold: 2, ..base() },
            SimParams { k: 3, m: 3, mttf_hours: HOURS_PER_YEAR / 4.0, mttr_hours: 48.0, repair_threshold: 2, ..base() },
        ];
        for q in sets {
            let exact = chain_p_loss(&q);
            let o = simulate_parallel(&q, 100_000, 11, 2).expect("valid");
            let half = (o.ci95.1 - o.ci95.0) / 2.0;
            eprintln!("chain {exact:.5}, simulated {:.5} {:?}", o.p_loss, o.ci95);
            assert!((o.p_loss - exact).abs() < 1.5 * half, "{q:?}: simulated {} {:?}, chain {exact}", o.p_loss, o.ci95);
            assert!(exact > 1e-3 && exact < 0.5, "{exact}");
        }
    }

    #[test]
    fn wilson_interval_contains_estimate() {
        for (s, n) in [(0, 10), (1, 10), (5, 10), (10, 10), (3, 100_000), (500, 1000)] {
            let (lo, hi) = wilson95(s, n);
            let p = s as f64 / n as f64;
            assert!(lo <= p && p <= hi && 0.0 <= lo && hi <= 1.0, "{s}/{n}: {lo} {hi}");
        }
        let o = p(&base(), 5000);
        assert!(o.ci95.0 <= o.p_loss && o.p_loss <= o.ci95.1);
        assert!(o.ci95.0 > 0.0 && o.ci95.1 < 1.0);
        // Known value: 5 of 10 at z = 1.96 is about (0.2366, 0.7634).
        let (lo, hi) = wilson95(5, 10);
        assert!((lo - 0.2366).abs() < 1e-3 && (hi - 0.7634).abs() < 1e-3);
    }

    #[test]
    fn bad_input_is_refused() {
        let bad = |f: fn(&mut SimParams)| {
            let mut q = base();
            f(&mut q);
            assert!(q.validate().is_err(), "{q:?}");
            assert!(simulate(&q, 10, 1).is_err());
            assert!(simulate_parallel(&q, 10, 1, 2).is_err());
        };
        bad(|q| q.k = 0);
        bad(|q| q.mttf_hours = 0.0);
        bad(|q| q.mttf_hours = -1.0);
        bad(|q| q.mttf_hours = f64::NAN);
        bad(|q| q.mttr_hours = 0.0);
        bad(|q| q.mttr_hours = f64::NAN);
        bad(|q| q.mttr_hours = f64::INFINITY);
        bad(|q| q.mtbp_hours = -24.0);
        bad(|q| q.horizon_hours = 0.0);
        bad(|q| q.repair_threshold = 0);
        bad(|q| q.repair_threshold = 4); // m + 2
        bad(|q| q.max_missed = 0);
        bad(|q| {
            q.domains = 2;
            q.domain_mttf_hours = 0.0;
        });
        bad(|q| q.domains = 7);
        assert!(SimParams { repair_threshold: 3, ..base() }.validate().is_ok());
        assert!(matches!(simulate(&base(), 0, 1), Err(ParamError::OutOfRange { name: "datasets", .. })));
        assert!(simulate_parallel(&base(), 0, 1, 2).is_err());
        assert!(simulate_parallel(&base(), 10, 1, 0).is_err());
    }

    #[test]
    fn hundred_thousand_dataset_years_quickly() {
        // K + M = 10, MTTF 1 year, MTBP 24 h: 10^5 dataset-years on two threads.
        let params = SimParams { k: 5, m: 5, ..SimParams::default() };
        let start = std::time::Instant::now();
        let o = simulate_parallel(&params, 100_000, 1, 2).expect("valid");
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(o.years, 100_000.0);
        assert!(o.repairs > 500_000, "{o:?}");
        eprintln!(
            "{} dataset-years in {secs:.3} s: {:.0} dataset-years/s; {:.2} slots rebuilt and {:.2} slot-units of traffic per dataset-year",
            o.years,
            o.years / secs,
            o.rebuilt_per_year(),
            o.traffic_per_year()
        );
    }
}
