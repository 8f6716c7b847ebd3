// SPDX-License-Identifier: MIT
// ProofPeriods: proof periods and per-slot challenges derived from recent block hashes.
pragma solidity 0.8.37;

/// @notice Time is cut into periods of `PERIOD_LENGTH` seconds (period = timestamp / length).
///         The challenge of a slot for a period is keccak256(blockhash(b), slotId, period),
///         where b = block.number - 1 - pointer and
///         pointer = (block.number + slotId + period) mod CHALLENGE_WINDOW.
///         While the chain advances, pointer grows with block.number so b stays fixed; every
///         CHALLENGE_WINDOW blocks the pointer wraps and b jumps forward (the slot gets a fresh
///         challenge). Right after such a jump (pointer < PROOF_DOWNTIME) no proof is required,
///         which gives hosts time to react and guards against shallow reorgs.
abstract contract ProofPeriods {
    /// BN254 scalar field modulus; proof inputs are reduced modulo it.
    uint256 internal constant FIELD_R = 21888242871839275222246405745257275088548364400416034343698204186575808495617;

    uint256 internal immutable PERIOD_LENGTH;
    uint256 internal immutable CHALLENGE_WINDOW;
    uint256 internal immutable PROOF_DOWNTIME;

    constructor(uint256 periodLength, uint256 challengeWindow, uint256 proofDowntime) {
        PERIOD_LENGTH = periodLength;
        CHALLENGE_WINDOW = challengeWindow;
        PROOF_DOWNTIME = proofDowntime;
    }

    function _periodOf(uint256 timestamp) internal view returns (uint256) {
        return timestamp / PERIOD_LENGTH;
    }

    function _currentPeriod() internal view returns (uint256) {
        return block.timestamp / PERIOD_LENGTH;
    }

    function _pointer(bytes32 slotId, uint256 period) internal view returns (uint256) {
        uint256 w = CHALLENGE_WINDOW;
        return (block.number % w + uint256(slotId) % w + period % w) % w;
    }

    function _challenge(bytes32 slotId, uint256 period) internal view returns (bytes32) {
        uint256 pointer = _pointer(slotId, period);
        bytes32 seed = block.number > pointer ? blockhash(block.number - 1 - pointer) : bytes32(0);
        return keccak256(abi.encode(seed, slotId, period));
    }

    /// Entropy public input of a proof: the challenge as a field element.
    function _entropy(bytes32 slotId, uint256 period) internal view returns (uint256) {
        return uint256(_challenge(slotId, period)) % FIELD_R;
    }

    /// Whether the challenge selects this slot (ignoring downtime) and whether we are in downtime.
    function _requirement(bytes32 slotId, uint256 period, uint256 probability)
        internal
        view
        returns (bool selected, bool downtime)
    {
        downtime = _pointer(slotId, period) < PROOF_DOWNTIME;
        selected = uint256(keccak256(abi.encode(_challenge(slotId, period)))) % probability == 0;
    }
}
