//! Storage offered for sale: the availabilities, their one owner. Every change (add, update, a
//! sale drawing a slot's size and collateral, a sale giving them back) happens under one lock,
//! which covers both the check and the write, and is persisted before the lock is let go: no
//! two changes can interleave and lose one, and two sales cannot both draw the last slot's worth.
//! A change wakes whoever waits for one (requests passed over are looked at again).

use std::sync::{Mutex, PoisonError};

use alloy::primitives::B256;
use tokio::sync::Notify;
use tracing::{info, warn};

use super::MarketError;
use super::records::RecordDir;
use super::types::{Availability, AvailabilityInput};
use super::words::{id_hex, parse_amount, parse_id};

const LOG: &str = "vellum::market::availability";

/// What a request needs of an availability.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Need {
    /// Bytes per slot.
    pub(crate) slot_size: u64,
    /// Seconds the request lasts.
    pub(crate) duration: u64,
    /// Its price per byte per second.
    pub(crate) price: u128,
    /// Collateral per slot.
    pub(crate) collateral: u128,
    /// When it ends (unix seconds).
    pub(crate) ends_at: u64,
}

/// A slot's worth drawn from an availability, to be given back when its sale ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Draw {
    /// The availability.
    pub(crate) id: String,
    /// Bytes drawn.
    pub(crate) size: u64,
    /// Collateral drawn.
    pub(crate) collateral: u128,
}

/// The availabilities.
pub(crate) struct Availabilities {
    records: RecordDir,
    all: Mutex<Vec<Availability>>,
    changed: Notify,
}

fn invalid(text: impl Into<String>) -> MarketError {
    MarketError::Invalid(text.into())
}

fn amount(text: &str, field: &str) -> Result<u128, MarketError> {
    parse_amount(text).ok_or_else(|| invalid(format!("{field} must be a decimal string")))
}

impl Availabilities {
    /// Loads the persisted availabilities.
    pub(crate) fn open(records: RecordDir) -> Result<Self, MarketError> {
        let all = records.load_all::<Availability>()?;
        Ok(Self { records, all: Mutex::new(all), changed: Notify::new() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Availability>> {
        self.all.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Saves one availability into the locked list.
    fn save(&self, all: &mut Vec<Availability>, a: Availability) -> Result<(), MarketError> {
        self.records.save(a.id.trim_start_matches("0x"), &a)?;
        match all.iter_mut().find(|x| x.id == a.id) {
            Some(x) => *x = a,
            None => all.push(a),
        }
        self.changed.notify_waiters();
        Ok(())
    }

    /// Resolves when an availability changes after this call.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Every availability.
    pub(crate) fn list(&self) -> Vec<Availability> {
        self.lock().clone()
    }

    /// Adds one of `total_size` bytes, if the store's `free` bytes not yet offered allow it.
    pub(crate) fn add(&self, input: AvailabilityInput, free: u64) -> Result<Availability, MarketError> {
        let total_size = input.total_size.filter(|s| *s > 0).ok_or_else(|| invalid("totalSize must be positive"))?;
        let duration = input.duration.filter(|d| *d > 0).ok_or_else(|| invalid("duration must be positive"))?;
        let price =
            input.min_price_per_byte_per_second.ok_or_else(|| invalid("minPricePerBytePerSecond is required"))?;
        amount(&price, "minPricePerBytePerSecond")?;
        let collateral = input.total_collateral.ok_or_else(|| invalid("totalCollateral is required"))?;
        amount(&collateral, "totalCollateral")?;
        let mut all = self.lock();
        let offered: u64 = all.iter().map(|a| a.free_size).fold(0, u64::saturating_add);
        let left = free.saturating_sub(offered);
        if total_size > left {
            return Err(invalid(format!("not enough storage quota: {total_size} bytes asked, {left} available")));
        }
        let a = Availability {
            id: id_hex(&B256::from(rand::random::<[u8; 32]>())),
            total_size,
            free_size: total_size,
            duration,
            min_price_per_byte_per_second: price,
            total_remaining_collateral: collateral.clone(),
            total_collateral: collateral,
            enabled: input.enabled.unwrap_or(true),
            until: input.until.unwrap_or(0),
        };
        self.save(&mut all, a.clone())?;
        info!(target: LOG, id = %a.id, total_size, "availability added");
        Ok(a)
    }

    /// Changes an availability; sizes and collateral in use stay in use.
    pub(crate) fn update(&self, id: &str, input: AvailabilityInput) -> Result<(), MarketError> {
        let id = parse_id(id).map(|b| id_hex(&b)).ok_or_else(|| invalid("invalid availability id"))?;
        let mut all = self.lock();
        let mut a = all
            .iter()
            .find(|a| a.id == id)
            .cloned()
            .ok_or_else(|| MarketError::NotFound(format!("no availability {id}")))?;
        if let Some(total) = input.total_size {
            let used = a.total_size.saturating_sub(a.free_size);
            if total < used || total == 0 {
                return Err(invalid(format!("totalSize must be positive and at least the {used} bytes in use")));
            }
            a.free_size = total - used;
            a.total_size = total;
        }
        if let Some(d) = input.duration {
            if d == 0 {
                return Err(invalid("duration must be positive"));
            }
            a.duration = d;
        }
        if let Some(p) = input.min_price_per_byte_per_second {
            amount(&p, "minPricePerBytePerSecond")?;
            a.min_price_per_byte_per_second = p;
        }
        if let Some(c) = input.total_collateral {
            let new = amount(&c, "totalCollateral")?;
            let old = parse_amount(&a.total_collateral).unwrap_or(0);
            let remaining = parse_amount(&a.total_remaining_collateral).unwrap_or(0);
            let used = old.saturating_sub(remaining);
            if new < used {
                return Err(invalid(format!("totalCollateral must be at least the {used} in use")));
            }
            a.total_collateral = c;
            a.total_remaining_collateral = (new - used).to_string();
        }
        if let Some(e) = input.enabled {
            a.enabled = e;
        }
        if let Some(u) = input.until {
            a.until = u;
        }
        self.save(&mut all, a)
    }

    /// Draws a slot's size and collateral from the first availability that takes the request,
    /// in one step; `None` when none does.
    pub(crate) fn draw(&self, need: &Need) -> Result<Option<Draw>, MarketError> {
        let mut all = self.lock();
        let Some(mut a) = all
            .iter()
            .find(|a| {
                a.enabled
                    && a.free_size >= need.slot_size
                    && a.duration >= need.duration
                    && parse_amount(&a.min_price_per_byte_per_second).is_some_and(|p| p <= need.price)
                    && parse_amount(&a.total_remaining_collateral).is_some_and(|c| c >= need.collateral)
                    && (a.until == 0 || a.until >= need.ends_at)
            })
            .cloned()
        else {
            return Ok(None);
        };
        let remaining = parse_amount(&a.total_remaining_collateral).unwrap_or(0);
        a.free_size -= need.slot_size;
        a.total_remaining_collateral = (remaining - need.collateral).to_string();
        let draw = Draw { id: a.id.clone(), size: need.slot_size, collateral: need.collateral };
        self.save(&mut all, a)?;
        Ok(Some(draw))
    }

    /// Restores the invariant a crash between two writes can break (a draw made but its sale
    /// not yet recorded, a sale ended but its draw not yet given back): an availability's free
    /// size is its total less the sizes `held` by live sales, and its remaining collateral its
    /// total less the collateral `held` by live sales and lost with failed ones. `held` lists
    /// (availability id, size or 0, collateral) per sale. Returns how many availabilities it
    /// corrected.
    pub(crate) fn reconcile(&self, held: &[(String, u64, u128)]) -> Result<usize, MarketError> {
        let mut all = self.lock();
        let mut fixed = Vec::new();
        for a in all.iter() {
            let (size, collateral) = held
                .iter()
                .filter(|(id, _, _)| *id == a.id)
                .fold((0u64, 0u128), |(s, c), (_, size, coll)| (s.saturating_add(*size), c.saturating_add(*coll)));
            let total_collateral = parse_amount(&a.total_collateral).unwrap_or(0);
            let free_size = a.total_size.saturating_sub(size);
            let remaining = total_collateral.saturating_sub(collateral).to_string();
            if free_size != a.free_size || remaining != a.total_remaining_collateral {
                warn!(target: LOG, id = %a.id, was = a.free_size, now = free_size, "availability corrected from the sales");
                let mut b = a.clone();
                b.free_size = free_size;
                b.total_remaining_collateral = remaining;
                fixed.push(b);
            }
        }
        let n = fixed.len();
        for b in fixed {
            self.save(&mut all, b)?;
        }
        Ok(n)
    }

    /// Gives a drawn slot's size back, and its collateral unless it was lost.
    pub(crate) fn give_back(&self, draw: &Draw, collateral: bool) -> Result<(), MarketError> {
        let mut all = self.lock();
        let Some(mut a) = all.iter().find(|a| a.id == draw.id).cloned() else {
            return Ok(()); // removed meanwhile
        };
        a.free_size = a.free_size.saturating_add(draw.size).min(a.total_size);
        if collateral {
            let remaining = parse_amount(&a.total_remaining_collateral).unwrap_or(0);
            let total = parse_amount(&a.total_collateral).unwrap_or(0);
            a.total_remaining_collateral = remaining.saturating_add(draw.collateral).min(total).to_string();
        }
        self.save(&mut all, a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path) -> Availabilities {
        Availabilities::open(RecordDir::open(dir).expect("dir")).expect("open")
    }

    fn input(size: u64, collateral: u128) -> AvailabilityInput {
        AvailabilityInput {
            total_size: Some(size),
            duration: Some(3600),
            min_price_per_byte_per_second: Some("1".into()),
            total_collateral: Some(collateral.to_string()),
            enabled: None,
            until: None,
        }
    }

    fn need(size: u64, collateral: u128) -> Need {
        Need { slot_size: size, duration: 60, price: 1, collateral, ends_at: 100 }
    }

    #[test]
    fn concurrent_draws_never_take_more_than_there_is() {
        let dir = tempfile::tempdir().expect("tmp");
        let av = std::sync::Arc::new(open(dir.path()));
        av.add(input(10 * 1024, 10 * 1024), u64::MAX).expect("add");
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let av = std::sync::Arc::clone(&av);
                std::thread::spawn(move || av.draw(&need(1024, 1024)).expect("draw").is_some())
            })
            .collect();
        let won = threads.into_iter().map(|t| t.join().expect("thread")).filter(|w| *w).count();
        assert_eq!(won, 10, "exactly ten slots' worth was offered");
        let a = &av.list()[0];
        assert_eq!(a.free_size, 0);
        assert_eq!(a.total_remaining_collateral, "0");
        // and what is on disk agrees
        assert_eq!(open(dir.path()).list()[0].free_size, 0);
    }

    #[test]
    fn an_update_racing_draws_and_gives_back_loses_none_of_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let av = std::sync::Arc::new(open(dir.path()));
        let id = av.add(input(100 * 1024, 1_000_000), u64::MAX).expect("add").id;
        let drawers: Vec<_> = (0..8)
            .map(|_| {
                let av = std::sync::Arc::clone(&av);
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        let d = av.draw(&need(1024, 10)).expect("draw").expect("room");
                        av.give_back(&d, true).expect("back");
                    }
                    av.draw(&need(1024, 10)).expect("draw").expect("room")
                })
            })
            .collect();
        for price in 0..20 {
            let change = AvailabilityInput {
                min_price_per_byte_per_second: Some(format!("{}", price % 2)),
                ..Default::default()
            };
            av.update(&id, change).expect("update");
        }
        for d in drawers {
            d.join().expect("thread");
        }
        let a = &open(dir.path()).list()[0];
        assert_eq!(a.free_size, 92 * 1024, "eight draws held, every give-back counted");
        assert_eq!(a.total_remaining_collateral, (1_000_000 - 80).to_string());
        assert_eq!(a.min_price_per_byte_per_second, "1");
    }

    #[test]
    fn adding_checks_the_quota_left_by_other_availabilities() {
        let dir = tempfile::tempdir().expect("tmp");
        let av = open(dir.path());
        av.add(input(600, 1), 1000).expect("first fits");
        let err = av.add(input(600, 1), 1000).expect_err("second does not");
        assert!(err.to_string().contains("400 available"), "{err}");
        av.add(input(400, 1), 1000).expect("the rest fits");
    }

    #[test]
    fn a_lost_slot_gives_its_space_back_but_not_its_collateral() {
        let dir = tempfile::tempdir().expect("tmp");
        let av = open(dir.path());
        av.add(input(4096, 4096), u64::MAX).expect("add");
        let d = av.draw(&need(1024, 1000)).expect("draw").expect("room");
        av.give_back(&d, false).expect("back");
        let a = &av.list()[0];
        assert_eq!((a.free_size, a.total_remaining_collateral.as_str()), (4096, "3096"));
        assert!(av.draw(&need(1024, 3097)).expect("draw").is_none(), "the slashed collateral is gone");
    }

    #[test]
    fn reconciling_returns_a_draw_whose_sale_was_never_recorded() {
        let dir = tempfile::tempdir().expect("tmp");
        let av = open(dir.path());
        let id = av.add(input(4096, 4096), u64::MAX).expect("add").id;
        av.draw(&need(1024, 1000)).expect("draw").expect("room"); // a live sale's
        av.draw(&need(1024, 1000)).expect("draw").expect("room"); // lost in a crash
        av.draw(&need(1024, 1000)).expect("draw").expect("room"); // a failed sale's collateral
        let held = [(id.clone(), 1024, 1000), (id.clone(), 0, 1000)];
        assert_eq!(av.reconcile(&held).expect("reconcile"), 1);
        let a = &open(dir.path()).list()[0];
        assert_eq!((a.free_size, a.total_remaining_collateral.as_str()), (3072, "2096"));
        assert_eq!(av.reconcile(&held).expect("again"), 0, "nothing left to correct");
    }

    #[test]
    fn updates_refuse_to_shrink_below_what_is_in_use() {
        let dir = tempfile::tempdir().expect("tmp");
        let av = open(dir.path());
        let id = av.add(input(4096, 4096), u64::MAX).expect("add").id;
        av.draw(&need(3000, 3000)).expect("draw").expect("room");
        let small = AvailabilityInput { total_size: Some(2000), ..Default::default() };
        assert!(av.update(&id, small).is_err());
        let poor = AvailabilityInput { total_collateral: Some("10".into()), ..Default::default() };
        assert!(av.update(&id, poor).is_err());
        let a = &av.list()[0];
        assert_eq!((a.total_size, a.free_size), (4096, 1096));
    }
}
