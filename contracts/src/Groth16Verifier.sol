// SPDX-License-Identifier: MIT
// Groth16Verifier: Groth16 proof verification over BN254 with the EVM precompiles
// 0x06 (ecAdd), 0x07 (ecMul) and 0x08 (pairing); the verifying key is a constructor argument.
pragma solidity 0.8.37;

import {IGroth16Verifier} from "./interfaces/IGroth16Verifier.sol";

/// @title Groth16Verifier
/// @notice Checks e(-A, B) * e(alpha, beta) * e(vk_x, gamma) * e(C, delta) == 1,
///         where vk_x = ic[0] + sum(input[i] * ic[i + 1]).
/// @dev G2 points are written imaginary part first (x.c1, x.c0, y.c1, y.c0), the order the
///      pairing precompile reads. alpha, beta, gamma and delta live in immutables; the ic points
///      (variable count) are stored as the code of a small data contract and read with one
///      EXTCODECOPY, which is far cheaper than one SLOAD per word.
contract Groth16Verifier is IGroth16Verifier {
    /// BN254 scalar field modulus (public inputs must be below it).
    uint256 internal constant R = 21888242871839275222246405745257275088548364400416034343698204186575808495617;
    /// BN254 base field modulus (point coordinates must be below it).
    uint256 internal constant Q = 21888242871839275222246405745257275088696311157297823662689037894645226208583;

    /// Gas handed to each precompile call (twice the EIP-1108 prices): a failing precompile
    /// burns what it was given, so an invalid proof must not burn the whole transaction.
    uint256 internal constant ADD_GAS = 300;
    uint256 internal constant MUL_GAS = 12_000;
    uint256 internal constant PAIRING_GAS = 2 * (45_000 + 4 * 34_000);

    uint256 private immutable ALPHA_X;
    uint256 private immutable ALPHA_Y;
    uint256 private immutable BETA_X1;
    uint256 private immutable BETA_X0;
    uint256 private immutable BETA_Y1;
    uint256 private immutable BETA_Y0;
    uint256 private immutable GAMMA_X1;
    uint256 private immutable GAMMA_X0;
    uint256 private immutable GAMMA_Y1;
    uint256 private immutable GAMMA_Y0;
    uint256 private immutable DELTA_X1;
    uint256 private immutable DELTA_X0;
    uint256 private immutable DELTA_Y1;
    uint256 private immutable DELTA_Y0;

    /// Data contract whose code is 0x00 followed by the ic points (x, y per point).
    address private immutable IC_DATA;
    /// Number of ic points (public inputs + 1).
    uint256 public immutable icLength;

    error InvalidVerifyingKey();
    error InvalidInputLength(uint256 given, uint256 expected);

    constructor(
        uint256[2] memory alpha,
        uint256[4] memory beta,
        uint256[4] memory gamma,
        uint256[4] memory delta,
        uint256[2][] memory icPoints
    ) {
        if (icPoints.length == 0 || icPoints.length > 1000) revert InvalidVerifyingKey();
        _checkWords(alpha[0], alpha[1], 0, 0);
        _checkWords(beta[0], beta[1], beta[2], beta[3]);
        _checkWords(gamma[0], gamma[1], gamma[2], gamma[3]);
        _checkWords(delta[0], delta[1], delta[2], delta[3]);
        ALPHA_X = alpha[0];
        ALPHA_Y = alpha[1];
        BETA_X1 = beta[0];
        BETA_X0 = beta[1];
        BETA_Y1 = beta[2];
        BETA_Y0 = beta[3];
        GAMMA_X1 = gamma[0];
        GAMMA_X0 = gamma[1];
        GAMMA_Y1 = gamma[2];
        GAMMA_Y0 = gamma[3];
        DELTA_X1 = delta[0];
        DELTA_X0 = delta[1];
        DELTA_Y1 = delta[2];
        DELTA_Y0 = delta[3];

        bytes memory data = abi.encodePacked(bytes1(0x00)); // STOP: the data contract is not callable
        for (uint256 i = 0; i < icPoints.length; i++) {
            _checkWords(icPoints[i][0], icPoints[i][1], 0, 0);
            data = bytes.concat(data, abi.encodePacked(icPoints[i][0], icPoints[i][1]));
        }
        // init code: PUSH2 len, DUP1, PUSH1 10, RETURNDATASIZE, CODECOPY, RETURNDATASIZE, RETURN
        bytes memory init = abi.encodePacked(hex"61", uint16(data.length), hex"80600a3d393df3", data);
        address icData;
        assembly {
            icData := create(0, add(init, 0x20), mload(init))
        }
        if (icData == address(0)) revert InvalidVerifyingKey();
        IC_DATA = icData;
        icLength = icPoints.length;
    }

    /// @notice Returns the ic points given at construction.
    function ic() external view returns (uint256[2][] memory points) {
        points = new uint256[2][](icLength);
        bytes memory raw = new bytes(icLength * 64);
        address icData = IC_DATA;
        assembly {
            extcodecopy(icData, add(raw, 0x20), 1, mload(raw))
        }
        for (uint256 i = 0; i < points.length; i++) {
            uint256 x;
            uint256 y;
            assembly {
                x := mload(add(raw, add(0x20, mul(i, 0x40))))
                y := mload(add(raw, add(0x40, mul(i, 0x40))))
            }
            points[i] = [x, y];
        }
    }

    /// @inheritdoc IGroth16Verifier
    /// @dev Returns false for any malformed proof or input word; reverts only when the
    ///      number of public inputs does not match the verifying key.
    function verifyProof(uint256[8] calldata proof, uint256[] calldata input) external view returns (bool ok) {
        uint256 n = input.length;
        if (n + 1 != icLength) revert InvalidInputLength(n, icLength - 1);
        // A and C must be on the curve (cheap to check here; an invalid point would make the
        // pairing precompile fail and burn the gas handed to it). B is checked by the precompile.
        if (!_onCurve(proof[0], proof[1]) || !_onCurve(proof[6], proof[7])) return false;

        // Pairing buffer: (-A, B), (alpha, beta), (vk_x, gamma), (C, delta): 24 words.
        uint256[24] memory p;
        p[6] = ALPHA_X;
        p[7] = ALPHA_Y;
        p[8] = BETA_X1;
        p[9] = BETA_X0;
        p[10] = BETA_Y1;
        p[11] = BETA_Y0;
        p[14] = GAMMA_X1;
        p[15] = GAMMA_X0;
        p[16] = GAMMA_Y1;
        p[17] = GAMMA_Y0;
        p[20] = DELTA_X1;
        p[21] = DELTA_X0;
        p[22] = DELTA_Y1;
        p[23] = DELTA_Y0;
        address icData = IC_DATA;

        assembly ("memory-safe") {
            // -A and B
            mstore(p, calldataload(proof))
            let ay := calldataload(add(proof, 0x20))
            mstore(add(p, 0x20), mod(sub(Q, ay), Q))
            calldatacopy(add(p, 0x40), add(proof, 0x40), 0x80)
            // C
            calldatacopy(add(p, 0x240), add(proof, 0xc0), 0x40)

            // ic points, then a 4-word scratch area for ecMul/ecAdd.
            let ics := mload(0x40)
            let icBytes := mul(add(n, 1), 0x40)
            extcodecopy(icData, ics, 1, icBytes)
            let scratch := add(ics, icBytes)
            mstore(0x40, add(scratch, 0x80))

            // vk_x accumulates at p[12..13], starting from ic[0].
            let acc := add(p, 0x180)
            mstore(acc, mload(ics))
            mstore(add(acc, 0x20), mload(add(ics, 0x20)))

            ok := 1
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                let s := calldataload(add(input.offset, mul(i, 0x20)))
                if iszero(lt(s, R)) {
                    ok := 0
                    break
                }
                let pt := add(ics, mul(add(i, 1), 0x40))
                mstore(scratch, mload(pt))
                mstore(add(scratch, 0x20), mload(add(pt, 0x20)))
                mstore(add(scratch, 0x40), s)
                ok := and(ok, staticcall(MUL_GAS, 0x07, scratch, 0x60, scratch, 0x40))
                mstore(add(scratch, 0x40), mload(acc))
                mstore(add(scratch, 0x60), mload(add(acc, 0x20)))
                ok := and(ok, staticcall(ADD_GAS, 0x06, scratch, 0x80, acc, 0x40))
            }

            if ok {
                // Yul evaluates arguments right to left: call first, then read the result.
                ok := staticcall(PAIRING_GAS, 0x08, p, 0x300, scratch, 0x20)
                ok := and(ok, eq(mload(scratch), 1))
            }
        }
    }

    /// y^2 == x^3 + 3 over the base field, or the point at infinity (0, 0).
    function _onCurve(uint256 x, uint256 y) private pure returns (bool) {
        if (x >= Q || y >= Q) return false;
        if (x == 0 && y == 0) return true;
        return mulmod(y, y, Q) == addmod(mulmod(mulmod(x, x, Q), x, Q), 3, Q);
    }

    function _checkWords(uint256 a, uint256 b, uint256 c, uint256 d) private pure {
        if (a >= Q || b >= Q || c >= Q || d >= Q) revert InvalidVerifyingKey();
    }
}
