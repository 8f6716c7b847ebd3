// SPDX-License-Identifier: MIT
// ProofPeriods: proof periods, their anchored random seeds, and per-slot challenges.
pragma solidity 0.8.37;

import {IMarketplaceEvents} from "./IMarketplaceEvents.sol";

/// @notice Time is cut into periods of `PERIOD_LENGTH` seconds (period = timestamp / length).
///
///         Every period has one random seed, fixed once and for all, so that "was a proof
///         required from slot s in period p" has the same answer whenever it is asked (by the
///         host during p, by a validator marking a miss in p + 1):
///         - anyone may call `anchorPeriods()`; during period p it records the current block
///           number as the anchor of period p + 1 (if p + 1 has none yet). The seed of a period
///           is the hash of its anchor block, the block that includes the anchoring transaction:
///           its sender cannot know that hash when it sends, so it cannot pick a seed that spares
///           its own slots (the seed is known from the next block on);
///         - a period anchored during the period before it requires proofs. A period nobody
///           anchored in advance can be anchored late, during itself: its seed then serves fills
///           and voluntary proofs, but no proof is required in it (hosts would otherwise learn
///           of a requirement with too little time left);
///         - `blockhash` only reaches back 256 blocks, so `anchorPeriods()` also copies the seeds
///           of the previous, current and next periods into storage once their blocks exist.
///           Validators call it twice per period (to anchor the next period, and at least one
///           block later to store its seed); a call with nothing to do costs little.
///
///         The challenge of slot s in period p is keccak256(seed, s, p); a periodic proof's
///         entropy input is the challenge mod r, a fill proof's is keccak256(challenge, filler)
///         mod r; a proof is required when keccak256(challenge) mod proofProbability == 0.
abstract contract ProofPeriods is IMarketplaceEvents {
    /// BN254 scalar field modulus; proof inputs are reduced modulo it.
    uint256 internal constant FIELD_R = 21888242871839275222246405745257275088548364400416034343698204186575808495617;

    /// Anchor word of a period: anchor block (64 bits) | LATE | CACHED | seed (top 190 bits).
    uint256 private constant BLOCK_MASK = (1 << 64) - 1;
    uint256 private constant LATE = 1 << 64;
    uint256 private constant CACHED = 1 << 65;
    uint256 private constant SEED_SHIFT = 66;

    uint256 internal immutable PERIOD_LENGTH;

    mapping(uint256 => uint256) private _anchors;

    constructor(uint256 periodLength) {
        PERIOD_LENGTH = periodLength;
    }

    function _periodOf(uint256 timestamp) internal view returns (uint256) {
        return timestamp / PERIOD_LENGTH;
    }

    function _currentPeriod() internal view returns (uint256) {
        return block.timestamp / PERIOD_LENGTH;
    }

    /// Anchors the next period (and the current one, late, if it has none) and stores the seeds
    /// of the previous, current and next periods once they are known.
    function _anchorPeriods() internal {
        uint256 period = _currentPeriod();
        _anchor(period + 1, 0);
        _anchor(period, LATE);
        _cacheSeed(period + 1);
        _cacheSeed(period);
        if (period > 0) _cacheSeed(period - 1);
    }

    function _anchor(uint256 period, uint256 late) private {
        if (_anchors[period] != 0) return;
        _anchors[period] = block.number | late;
        emit PeriodAnchored(period, block.number, late != 0);
    }

    function _cacheSeed(uint256 period) internal {
        uint256 w = _anchors[period];
        if (w == 0 || w & CACHED != 0) return;
        bytes32 h = blockhash(w & BLOCK_MASK);
        if (h != 0) _anchors[period] = (w & (BLOCK_MASK | LATE)) | CACHED | (uint256(h) >> SEED_SHIFT << SEED_SHIFT);
    }

    /// The seed of a period: whether it is known (its block exists and is in reach, or it was
    /// stored), whether the anchor came late, the seed itself, and the anchor block.
    function _seed(uint256 period) internal view returns (bool ready, bool late, uint256 seed, uint256 anchorBlock) {
        uint256 w = _anchors[period];
        if (w == 0) return (false, false, 0, 0);
        late = w & LATE != 0;
        anchorBlock = w & BLOCK_MASK;
        if (w & CACHED != 0) return (true, late, w >> SEED_SHIFT, anchorBlock);
        bytes32 h = blockhash(anchorBlock);
        return (h != 0, late, uint256(h) >> SEED_SHIFT, anchorBlock);
    }

    /// The challenge of a slot in a period, if the period's seed is known.
    function _challenge(bytes32 slotId, uint256 period) internal view returns (bool ready, bool late, bytes32 challenge) {
        uint256 seed;
        (ready, late, seed,) = _seed(period);
        if (ready) challenge = keccak256(abi.encode(seed, slotId, period));
    }

    /// Entropy public input of a proof: the challenge as a field element (ready: seed known).
    function _entropy(bytes32 slotId, uint256 period) internal view returns (bool ready, uint256 entropy) {
        bytes32 challenge;
        (ready,, challenge) = _challenge(slotId, period);
        entropy = uint256(challenge) % FIELD_R;
    }

    /// Entropy of a fill proof: bound to the filling address, so that a fill proof copied from
    /// another host's pending transaction fails for anyone else (ready: seed known).
    function _fillEntropy(bytes32 slotId, uint256 period, address filler) internal view returns (bool ready, uint256 entropy) {
        bytes32 challenge;
        (ready,, challenge) = _challenge(slotId, period);
        entropy = uint256(keccak256(abi.encode(challenge, filler))) % FIELD_R;
    }

    /// Whether a proof from the slot is required in the period (seed known, anchored in advance,
    /// selected by the challenge).
    function _selected(bytes32 slotId, uint256 period, uint256 probability) internal view returns (bool) {
        (bool ready, bool late, bytes32 challenge) = _challenge(slotId, period);
        return ready && !late && uint256(keccak256(abi.encode(challenge))) % probability == 0;
    }
}
