//! The two ledgers of a paid block exchange, as pure state machines (no clock, no I/O, no
//! chain), so that the money rules are tested without a network.
//!
//! - [`Provider`] is what a serving node keeps per downloading peer: the bytes it served, the
//!   highest voucher it holds on the peer's channel, and whether the next request may be
//!   served. A peer is served a free allowance, then as long as what it owes stays within a
//!   bounded credit above what its vouchers cover. So a peer that stops paying gets at most
//!   `free_bytes` plus `credit` worth of bytes.
//! - [`Payer`] is what a downloading node keeps per provider: the price it accepted, the bytes
//!   it received, the bytes it asked for that are still on their way, and the highest voucher it
//!   signed. With each request it signs for what it has received or asked for plus this
//!   request, never more than `prepay` ahead of what it received, and never beyond its budget.
//!   So a provider that takes a voucher and stops serving costs it at most `prepay`; once the
//!   transfers are over, [`Payer::settle`] signs for exactly what arrived. A provider that
//!   counts more than arrived (answers lost on the way, a restart of the payer) is believed up
//!   to `prepay` more in all ([`Payer::sync`]), so a lying provider takes at most twice that.
//!
//! Amounts are token base units (`U256`), computed with checked arithmetic.

use alloy::primitives::U256;

/// A provider's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    /// Tokens per byte served beyond the free allowance.
    pub price_per_byte: U256,
    /// Bytes served to each peer free of charge.
    pub free_bytes: u64,
    /// Tokens a peer may owe beyond what its vouchers cover before it is served no more.
    pub credit: U256,
}

/// Whether a request may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Serve it.
    Serve,
    /// Serve it only once a voucher for at least `needed` is held (the peer holds `held`).
    PayFirst {
        /// The smallest voucher that lets the request through.
        needed: U256,
        /// The highest voucher held.
        held: U256,
    },
}

/// Why an amount could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("amount overflows 256 bits")]
pub struct Overflow;

/// A serving node's account of one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provider {
    /// Bytes served to the peer, in all.
    pub served: u64,
    /// The highest voucher held on the peer's channel (checked before it was recorded).
    pub held: U256,
}

impl Provider {
    /// What the peer owes after `served` bytes in all.
    pub fn owed_after(terms: &Terms, served: u64) -> Result<U256, Overflow> {
        let charged = served.saturating_sub(terms.free_bytes);
        terms.price_per_byte.checked_mul(U256::from(charged)).ok_or(Overflow)
    }

    /// Whether `bytes` more may be served now.
    pub fn decide(&self, terms: &Terms, bytes: u64) -> Result<Decision, Overflow> {
        let owed = Self::owed_after(terms, self.served.checked_add(bytes).ok_or(Overflow)?)?;
        let covered = self.held.checked_add(terms.credit).ok_or(Overflow)?;
        if owed <= covered {
            return Ok(Decision::Serve);
        }
        Ok(Decision::PayFirst { needed: owed.saturating_sub(terms.credit), held: self.held })
    }

    /// Records bytes served.
    pub fn served(&mut self, bytes: u64) {
        self.served = self.served.saturating_add(bytes);
    }

    /// Records a voucher that was checked (signature, channel, deposit) and is higher than the
    /// one held; a lower or equal one changes nothing. Returns whether it was recorded.
    pub fn hold(&mut self, cumulative: U256) -> bool {
        if cumulative > self.held {
            self.held = cumulative;
            return true;
        }
        false
    }

    /// What the peer owes beyond the vouchers held (0 when it is paid up or ahead).
    pub fn unpaid(&self, terms: &Terms) -> Result<U256, Overflow> {
        Ok(Self::owed_after(terms, self.served)?.saturating_sub(self.held))
    }
}

/// Why a payer will not sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PayError {
    /// The provider asks more per byte than the payer accepts.
    #[error("the provider asks {asked} per byte; at most {max} is accepted")]
    TooDear {
        /// The provider's price.
        asked: U256,
        /// The payer's limit.
        max: U256,
    },
    /// Paying for the request would pass the budget (the channel's deposit, or less).
    #[error("paying {needed} would pass the budget of {budget}")]
    OverBudget {
        /// The voucher that would be needed.
        needed: U256,
        /// The budget.
        budget: U256,
    },
    /// The provider says it is owed more than the payer counts by more than it forgives.
    #[error("the provider asks for {needed} where {counted} is counted, beyond the {limit} forgiven at most")]
    Overclaimed {
        /// What the provider asked.
        needed: U256,
        /// What the payer counts.
        counted: U256,
        /// The most forgiven.
        limit: U256,
    },
    /// An amount overflowed.
    #[error(transparent)]
    Overflow(#[from] Overflow),
}

/// A downloading node's account with one provider (across the channels it pays it through:
/// amounts are totals, a channel's vouchers are these less what earlier channels carried).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payer {
    /// The provider's terms, as it announced them and the payer accepted them.
    pub terms: Terms,
    /// The most the payer will ever sign for in all.
    pub budget: U256,
    /// The most the payer signs ahead of the bytes it has received; also the most it accepts
    /// to pay for bytes the provider says it sent and that never arrived.
    pub prepay: U256,
    /// Bytes received from the provider (checked blocks only).
    pub received: u64,
    /// Bytes asked for whose answers have not come back.
    pub in_flight: u64,
    /// The highest total signed.
    pub signed: U256,
    /// Tokens accepted beyond the payer's own count, on the provider's word that it sent
    /// bytes that never arrived (answers lost, a restart of the payer): at most `prepay`.
    pub forgiven: U256,
    /// The least the next voucher must carry (the provider asked for it).
    pub floor: U256,
}

impl Payer {
    /// Accepts a provider's terms if its price is at most `max_price`.
    pub fn new(terms: Terms, max_price: U256, budget: U256, prepay: U256) -> Result<Self, PayError> {
        if terms.price_per_byte > max_price {
            return Err(PayError::TooDear { asked: terms.price_per_byte, max: max_price });
        }
        Ok(Payer {
            terms,
            budget,
            prepay,
            received: 0,
            in_flight: 0,
            signed: U256::ZERO,
            forgiven: U256::ZERO,
            floor: U256::ZERO,
        })
    }

    /// What is owed for `bytes` by the payer's count, with what it forgave.
    fn owed(&self, bytes: u64) -> Result<U256, Overflow> {
        Provider::owed_after(&self.terms, bytes)?.checked_add(self.forgiven).ok_or(Overflow)
    }

    /// The voucher to send with a request for `bytes` more, which it counts as in flight: the
    /// cost of what was received or is in flight plus what is asked, capped at `prepay` ahead
    /// of what was received (and at least what the provider last asked). `None` when the one
    /// already signed comes within half the provider's credit of it (or the bytes are still
    /// free). A refusal (over budget) counts nothing.
    pub fn voucher_for(&mut self, bytes: u64) -> Result<Option<U256>, PayError> {
        let received_cost = self.owed(self.received)?;
        let in_flight = self.in_flight.checked_add(bytes).ok_or(Overflow)?;
        let asked = self.received.checked_add(in_flight).ok_or(Overflow)?;
        let wanted = self.owed(asked)?;
        let cap = received_cost.checked_add(self.prepay).ok_or(Overflow)?;
        let target = wanted.min(cap).max(self.floor);
        // While what is signed stays within half the provider's credit of what is due, no new
        // voucher is needed: one is signed (and checked) per half-credit of bytes, not per
        // request. The last one is made exact by `settle`.
        let slack = self.terms.credit / U256::from(2u64);
        if target <= self.signed || (self.signed >= self.floor && target <= self.signed.saturating_add(slack)) {
            self.in_flight = in_flight;
            return Ok(None);
        }
        if target > self.budget {
            return Err(PayError::OverBudget { needed: target, budget: self.budget });
        }
        self.in_flight = in_flight;
        self.signed = target;
        Ok(Some(target))
    }

    /// Records the answer to a request for `asked` bytes, of which `received` arrived checked.
    pub fn answered(&mut self, asked: u64, received: u64) {
        self.in_flight = self.in_flight.saturating_sub(asked);
        self.received = self.received.saturating_add(received);
    }

    /// Records checked bytes received (none of them asked through [`Payer::voucher_for`]).
    pub fn received(&mut self, bytes: u64) {
        self.received = self.received.saturating_add(bytes);
    }

    /// Takes the provider's word that it is owed `needed` (in all) before it serves more. When
    /// that is more than the payer's own count (bytes lost on the way, or counted before a
    /// restart), the difference is forgiven, up to `prepay` in all; the next voucher carries at
    /// least `needed`. `Ok(false)` when the payer signed that much already (its voucher is on
    /// the way).
    pub fn sync(&mut self, needed: U256) -> Result<bool, PayError> {
        if needed <= self.signed {
            return Ok(false);
        }
        if needed > self.budget {
            return Err(PayError::OverBudget { needed, budget: self.budget });
        }
        let due = self.owed(self.received.checked_add(self.in_flight).ok_or(Overflow)?)?;
        if needed > due {
            let forgiven = self.forgiven.checked_add(needed - due).ok_or(Overflow)?;
            if forgiven > self.prepay {
                return Err(PayError::Overclaimed { needed, counted: due, limit: self.prepay });
            }
            self.forgiven = forgiven;
        }
        // Never more than `prepay` ahead of what arrived (and was forgiven).
        let floor = needed.min(self.owed(self.received)?.checked_add(self.prepay).ok_or(Overflow)?);
        if floor <= self.floor.max(self.signed) {
            return Ok(false);
        }
        self.floor = floor;
        Ok(true)
    }

    /// The final voucher once nothing is in flight: the exact cost of what arrived (with what
    /// was forgiven), if it is more than what was signed (never more than the budget). `None`
    /// when what was signed already covers it.
    pub fn settle(&mut self) -> Result<Option<U256>, PayError> {
        if self.in_flight > 0 {
            return Ok(None);
        }
        let owed = self.owed(self.received)?.max(self.floor);
        if owed <= self.signed {
            return Ok(None);
        }
        if owed > self.budget {
            return Err(PayError::OverBudget { needed: owed, budget: self.budget });
        }
        self.signed = owed;
        Ok(Some(owed))
    }

    /// What the payer has signed for beyond the bytes it received and what it forgave (its
    /// exposure if the provider stops now).
    pub fn ahead(&self) -> Result<U256, Overflow> {
        Ok(self.signed.saturating_sub(self.owed(self.received)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BLOCK: u64 = 65_536;

    fn terms() -> Terms {
        Terms { price_per_byte: U256::from(3u64), free_bytes: 4 * BLOCK, credit: U256::from(3 * 2 * BLOCK) }
    }

    #[test]
    fn the_allowance_is_free_then_vouchers_keep_a_peer_served() {
        let t = terms();
        let mut p = Provider::default();
        for _ in 0..4 {
            assert_eq!(p.decide(&t, BLOCK), Ok(Decision::Serve));
            p.served(BLOCK);
        }
        assert_eq!(p.unpaid(&t), Ok(U256::ZERO));
        // Two more blocks on credit, then a voucher is needed.
        for _ in 0..2 {
            assert_eq!(p.decide(&t, BLOCK), Ok(Decision::Serve));
            p.served(BLOCK);
        }
        let needed = U256::from(3 * BLOCK);
        assert_eq!(p.decide(&t, BLOCK), Ok(Decision::PayFirst { needed, held: U256::ZERO }));
        assert!(p.hold(needed));
        assert_eq!(p.decide(&t, BLOCK), Ok(Decision::Serve));
        assert!(!p.hold(U256::from(1u64)), "a lower voucher is not recorded");
    }

    #[test]
    fn a_payer_pays_as_it_goes_and_never_beyond_its_prepayment() {
        let t = terms();
        let mut payer =
            Payer::new(t, U256::from(5u64), U256::from(10u64).pow(U256::from(18u64)), U256::from(3 * 16 * BLOCK))
                .expect("cheap enough");
        let mut provider = Provider::default();
        let mut paid = U256::ZERO;
        for _ in 0..20 {
            let ask = 16 * BLOCK;
            if let Some(v) = payer.voucher_for(ask).expect("within budget") {
                assert!(provider.hold(v));
                paid = v;
            }
            assert_eq!(provider.decide(&t, ask), Ok(Decision::Serve), "a paying peer is always served");
            provider.served(ask);
            payer.answered(ask, ask);
            assert!(payer.ahead().expect("fits") <= payer.prepay);
        }
        // The provider was paid exactly for the bytes beyond the allowance.
        assert_eq!(paid, Provider::owed_after(&t, 20 * 16 * BLOCK).expect("fits"));
        assert_eq!(provider.unpaid(&t), Ok(U256::ZERO));
    }

    #[test]
    fn a_window_of_requests_in_flight_is_paid_ahead_and_settled_to_the_unit() {
        let t = Terms { price_per_byte: U256::from(7u64), free_bytes: 3 * BLOCK + 11, credit: U256::ZERO };
        let mut payer = Payer::new(t, U256::from(7u64), U256::MAX, U256::from(7 * 8 * 16 * BLOCK)).expect("price ok");
        let mut provider = Provider::default();
        let asks: Vec<u64> = (0..40u64).map(|i| 16 * BLOCK - (i % 3) * 1000).collect();
        // Eight requests out at once; each is served as it arrives, before the earlier answers
        // are back, so its voucher must cover the ones in flight too.
        let mut out = std::collections::VecDeque::new();
        for ask in &asks {
            if let Some(v) = payer.voucher_for(*ask).expect("budget") {
                provider.hold(v);
            }
            assert_eq!(provider.decide(&t, *ask), Ok(Decision::Serve), "no credit needed: vouchers lead");
            provider.served(*ask);
            out.push_back(*ask);
            if out.len() == 8 {
                let a = out.pop_front().expect("one out");
                payer.answered(a, a);
            }
        }
        while let Some(a) = out.pop_front() {
            payer.answered(a, a);
        }
        if let Some(v) = payer.settle().expect("budget") {
            provider.hold(v);
        }
        let total: u64 = asks.iter().sum();
        assert_eq!(provider.held, Provider::owed_after(&t, total).expect("fits"));
        assert_eq!(payer.settle(), Ok(None), "settling twice signs nothing more");
    }

    #[test]
    fn vouchers_are_signed_once_per_half_credit_and_the_provider_never_waits() {
        let credit_bytes = 8 * 16 * BLOCK;
        let t = Terms { price_per_byte: U256::from(2u64), free_bytes: 0, credit: U256::from(2 * credit_bytes) };
        let mut payer = Payer::new(t, U256::from(2u64), U256::MAX, U256::from(2 * 16 * 16 * BLOCK)).expect("price ok");
        let mut provider = Provider::default();
        let (mut signed, requests) = (0, 256u64);
        for _ in 0..requests {
            if let Some(v) = payer.voucher_for(16 * BLOCK).expect("budget") {
                provider.hold(v);
                signed += 1;
            }
            assert_eq!(provider.decide(&t, 16 * BLOCK), Ok(Decision::Serve));
            provider.served(16 * BLOCK);
            payer.answered(16 * BLOCK, 16 * BLOCK);
        }
        assert!(signed <= requests / 4 + 1, "{signed} vouchers for {requests} requests");
        if let Some(v) = payer.settle().expect("budget") {
            provider.hold(v);
        }
        assert_eq!(provider.held, Provider::owed_after(&t, requests * 16 * BLOCK).expect("fits"));
    }

    #[test]
    fn a_provider_counting_bytes_that_never_arrived_is_believed_up_to_the_prepayment() {
        let t = Terms { price_per_byte: U256::from(2u64), free_bytes: 4 * BLOCK, credit: U256::from(2 * 16 * BLOCK) };
        let prepay = U256::from(2 * 32 * BLOCK);
        let mut payer = Payer::new(t, U256::from(2u64), U256::MAX, prepay).expect("price ok");
        let mut provider = Provider::default();
        // The provider served 40 batches to this peer before the payer restarted (its count
        // is gone), 38 of them paid through the old channel. On the new channel the provider
        // asks for what is owed beyond what the old one carried.
        provider.served(40 * 16 * BLOCK);
        let paid_before = Provider::owed_after(&t, 38 * 16 * BLOCK).expect("fits");
        provider.hold(paid_before);
        let Ok(Decision::PayFirst { needed, .. }) = provider.decide(&t, 16 * BLOCK) else { panic!("pay first") };
        assert_eq!(payer.sync(needed - paid_before), Ok(true));
        let v = payer.voucher_for(16 * BLOCK).expect("budget").expect("a voucher");
        assert!(v >= needed - paid_before);
        provider.hold(paid_before + v);
        // From then on the two agree: no more asking.
        for _ in 0..20 {
            assert_eq!(provider.decide(&t, 16 * BLOCK), Ok(Decision::Serve));
            provider.served(16 * BLOCK);
            payer.answered(16 * BLOCK, 16 * BLOCK);
            if let Some(v) = payer.voucher_for(16 * BLOCK).expect("budget") {
                provider.hold(paid_before + v);
            }
        }
        assert!(payer.forgiven <= prepay);
        // A provider claiming far more than arrived is refused.
        let mut other = Payer::new(t, U256::from(2u64), U256::MAX, prepay).expect("price ok");
        let claim = Provider::owed_after(&t, 1000 * 16 * BLOCK).expect("fits");
        assert!(matches!(other.sync(claim), Err(PayError::Overclaimed { .. })));
        assert_eq!(other.forgiven, U256::ZERO);
        assert_eq!(other.sync(U256::ZERO), Ok(false), "nothing asked beyond what was signed");
    }

    #[test]
    fn a_lost_answer_is_settled_at_what_arrived() {
        let t = Terms { price_per_byte: U256::from(2u64), free_bytes: 0, credit: U256::ZERO };
        let mut payer = Payer::new(t, U256::from(2u64), U256::MAX, U256::MAX).expect("price ok");
        assert_eq!(payer.voucher_for(1000), Ok(Some(U256::from(2000u64))));
        assert_eq!(payer.settle(), Ok(None), "nothing is settled while a request is out");
        payer.answered(1000, 0);
        assert_eq!(payer.voucher_for(500), Ok(None), "what was signed ahead still covers it");
        payer.answered(500, 500);
        assert_eq!(payer.settle(), Ok(None), "signed 2000 covers the 1000 owed");
        assert_eq!(payer.ahead(), Ok(U256::from(1000u64)));
    }

    #[test]
    fn dear_providers_and_spent_budgets_are_refused() {
        let t = terms();
        assert!(matches!(Payer::new(t, U256::from(2u64), U256::MAX, U256::MAX), Err(PayError::TooDear { .. })));
        let mut payer = Payer::new(t, U256::from(3u64), U256::from(100u64), U256::MAX).expect("price ok");
        assert_eq!(payer.voucher_for(4 * BLOCK), Ok(None), "the allowance needs no voucher");
        assert!(matches!(payer.voucher_for(5 * BLOCK), Err(PayError::OverBudget { .. })));
        assert_eq!(payer.signed, U256::ZERO, "nothing signed when refused");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever a peer pays (or stops paying), the provider serves it at most the
        /// allowance plus its credit beyond what the vouchers cover.
        #[test]
        fn a_non_paying_peer_gets_no_more_than_allowance_plus_credit(
            price in 1u64..1000, free in 0u64..64, credit in 0u64..(1u64 << 30), pays in 0u64..(1u64 << 40),
        ) {
            let t = Terms { price_per_byte: U256::from(price), free_bytes: free * BLOCK, credit: U256::from(credit) };
            let mut p = Provider::default();
            p.hold(U256::from(pays));
            let mut rounds = 0;
            while p.decide(&t, BLOCK) == Ok(Decision::Serve) && rounds < 100_000 {
                p.served(BLOCK);
                rounds += 1;
            }
            let bound = U256::from(t.free_bytes) + (U256::from(pays) + t.credit) / U256::from(price);
            prop_assert!(U256::from(p.served) <= bound, "served {} beyond {bound}", p.served);
            prop_assert!(p.unpaid(&t).expect("fits") <= t.credit);
        }

        /// A payer's exposure to a provider that stops serving is at most its prepayment, and it
        /// never signs beyond its budget.
        #[test]
        fn a_payer_is_never_more_than_prepay_ahead(
            price in 1u64..1000, prepay in 0u64..(1u64 << 32), budget in 0u64..(1u64 << 40),
            asks in proptest::collection::vec(1u64..(1u64 << 21), 1..40), delivered in proptest::collection::vec(any::<bool>(), 40),
        ) {
            let t = Terms { price_per_byte: U256::from(price), free_bytes: 0, credit: U256::ZERO };
            let mut payer = Payer::new(t, U256::from(price), U256::from(budget), U256::from(prepay)).expect("price ok");
            for (i, ask) in asks.iter().enumerate() {
                let _ = payer.voucher_for(*ask);
                if i % 7 == 3 {
                    // A provider's claim, honest or not.
                    let _ = payer.sync(U256::from(*ask) * U256::from(price) * U256::from(i as u64));
                }
                prop_assert!(payer.signed <= U256::from(budget));
                prop_assert!(payer.ahead().expect("fits") <= U256::from(prepay));
                prop_assert!(payer.forgiven <= U256::from(prepay));
                payer.answered(*ask, if delivered[i] { *ask } else { 0 });
            }
        }
    }
}
