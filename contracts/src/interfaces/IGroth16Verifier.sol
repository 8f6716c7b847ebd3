// SPDX-License-Identifier: MIT
// Interface of a Groth16 (BN254) proof verifier as used by the marketplace.
pragma solidity 0.8.37;

interface IGroth16Verifier {
    /// @param proof A.x, A.y, B.x.c1, B.x.c0, B.y.c1, B.y.c0, C.x, C.y
    /// @param input public inputs, each below the BN254 scalar field modulus
    /// @return true when the proof is valid for `input`
    function verifyProof(uint256[8] calldata proof, uint256[] calldata input) external view returns (bool);
}
