// SPDX-License-Identifier: MIT
// Mock Groth16 verifier: a "proof" is valid when proof[0] commits to the public inputs.
pragma solidity 0.8.37;

import {IGroth16Verifier} from "../../src/interfaces/IGroth16Verifier.sol";

contract MockVerifier is IGroth16Verifier {
    bool public rejectAll;

    function setRejectAll(bool reject) external {
        rejectAll = reject;
    }

    /// The proof a test should submit for `input`.
    function proofFor(uint256[] memory input) public pure returns (uint256[8] memory proof) {
        proof[0] = uint256(keccak256(abi.encode(input)));
    }

    function verifyProof(uint256[8] calldata proof, uint256[] calldata input) external view returns (bool) {
        if (rejectAll) return false;
        return proof[0] == uint256(keccak256(abi.encode(input)));
    }
}
