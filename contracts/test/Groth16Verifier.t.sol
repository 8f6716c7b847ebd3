// SPDX-License-Identifier: MIT
// Groth16Verifier tests: a synthetic key whose proofs the test can build with the precompiles,
// and the real proof fixture from the circuit (test/fixtures/vk.json, proof.json).
pragma solidity 0.8.37;

import {Test} from "./utils/Test.sol";
import {Groth16Verifier} from "../src/Groth16Verifier.sol";

contract Groth16VerifierTest is Test {
    uint256 internal constant Q = 21888242871839275222246405745257275088696311157297823662689037894645226208583;
    uint256 internal constant R = 21888242871839275222246405745257275088548364400416034343698204186575808495617;
    // BN254 G2 generator, imaginary part first.
    uint256 internal constant G2_X1 = 11559732032986387107991004021392285783925812861821192530917403151452391805634;
    uint256 internal constant G2_X0 = 10857046999023057135944570762232829481370756359578518086990519993285655852781;
    uint256 internal constant G2_Y1 = 4082367875863433681332203403145435568316851327593401208105741076214120093531;
    uint256 internal constant G2_Y0 = 8495653923123431417604973247489272438418190587263600148770280649306958101930;

    Groth16Verifier internal synthetic;
    uint256[2][] internal syntheticIc;
    uint256[2] internal syntheticAlpha;

    function setUp() public {
        // Synthetic key: beta = gamma = delta = G2, so a proof is valid iff A = alpha + vk_x + C (with B = G2).
        syntheticAlpha = _mul([uint256(1), 2], 7);
        for (uint256 i = 0; i < 4; i++) {
            syntheticIc.push(_mul([uint256(1), 2], 11 + i));
        }
        uint256[4] memory g2 = [G2_X1, G2_X0, G2_Y1, G2_Y0];
        synthetic = new Groth16Verifier(syntheticAlpha, g2, g2, g2, syntheticIc);
    }

    // ---------------------------------------------------------------- synthetic key

    function _syntheticProof(uint256[] memory input) internal view returns (uint256[8] memory proof) {
        uint256[2] memory vkx = syntheticIc[0];
        for (uint256 i = 0; i < input.length; i++) {
            vkx = _add(vkx, _mul(syntheticIc[i + 1], input[i]));
        }
        uint256[2] memory c = _mul([uint256(1), 2], 5);
        uint256[2] memory a = _add(_add(syntheticAlpha, vkx), c);
        proof = [a[0], a[1], G2_X1, G2_X0, G2_Y1, G2_Y0, c[0], c[1]];
    }

    function _inputs(uint256 a, uint256 b, uint256 c) internal pure returns (uint256[] memory input) {
        input = new uint256[](3);
        input[0] = a;
        input[1] = b;
        input[2] = c;
    }

    function testSyntheticProofVerifies() public view {
        uint256[] memory input = _inputs(123, R - 1, 0);
        assertTrue(synthetic.verifyProof(_syntheticProof(input), input), "valid proof rejected");
    }

    function testSyntheticGas() public view {
        uint256[] memory input = _inputs(uint256(keccak256("a")) % R, uint256(keccak256("b")) % R, 5);
        uint256[8] memory proof = _syntheticProof(input);
        uint256 before = gasleft();
        bool ok = synthetic.verifyProof(proof, input);
        uint256 used = before - gasleft();
        assertTrue(ok, "valid proof rejected");
        assertLe(used, 215_000, "verifier gas");
    }

    function testFuzzSyntheticRejectsOtherInputs(uint256 a, uint256 b, uint256 c, uint8 which, uint256 other) public view {
        uint256[] memory input = _inputs(a % R, b % R, c % R);
        uint256[8] memory proof = _syntheticProof(input);
        assertTrue(synthetic.verifyProof(proof, input), "valid proof rejected");
        uint256 i = which % 3;
        other = other % R;
        vm.assume(other != input[i]);
        input[i] = other;
        assertFalse(synthetic.verifyProof(proof, input));
    }

    function testRejectsInputNotInField() public view {
        uint256[] memory input = _inputs(1, 2, 3);
        uint256[8] memory proof = _syntheticProof(input);
        input[1] = 2 + R; // same value mod r: must still be rejected
        assertFalse(synthetic.verifyProof(proof, input));
    }

    function testRejectsWrongInputCount() public {
        uint256[] memory input = new uint256[](2);
        uint256[8] memory proof = _syntheticProof(input);
        vm.expectRevert(abi.encodeWithSelector(Groth16Verifier.InvalidInputLength.selector, 2, 3));
        synthetic.verifyProof(proof, input);
    }

    function testRejectsEachFlippedProofWord() public view {
        uint256[] memory input = _inputs(7, 8, 9);
        uint256[8] memory proof = _syntheticProof(input);
        for (uint256 w = 0; w < 8; w++) {
            uint256[8] memory bad = proof;
            bad[w] ^= 1;
            assertFalse(_accepts(synthetic, bad, input));
        }
        uint256[8] memory badY = proof;
        badY[1] += Q; // A.y out of range
        assertFalse(_accepts(synthetic, badY, input));
    }

    function testExposesIc() public view {
        uint256[2][] memory ic = synthetic.ic();
        assertEq(ic.length, 4);
        for (uint256 i = 0; i < 4; i++) {
            assertEq(ic[i][0], syntheticIc[i][0]);
            assertEq(ic[i][1], syntheticIc[i][1]);
        }
    }

    function testConstructorRejectsBadKey() public {
        uint256[4] memory g2 = [G2_X1, G2_X0, G2_Y1, G2_Y0];
        uint256[2][] memory none = new uint256[2][](0);
        vm.expectRevert(Groth16Verifier.InvalidVerifyingKey.selector);
        new Groth16Verifier(syntheticAlpha, g2, g2, g2, none);
        uint256[2][] memory big = new uint256[2][](1);
        big[0] = [Q, uint256(1)];
        vm.expectRevert(Groth16Verifier.InvalidVerifyingKey.selector);
        new Groth16Verifier(syntheticAlpha, g2, g2, g2, big);
    }

    // ---------------------------------------------------------------- real fixture

    string internal constant VK = "test/fixtures/vk.json";
    string internal constant PROOF = "test/fixtures/proof.json";

    function _fixture() internal returns (Groth16Verifier v, uint256[8] memory proof, uint256[] memory input) {
        string memory vk = vm.readFile(VK);
        uint256[] memory a = vm.parseJsonUintArray(vk, ".alpha");
        uint256[] memory b = vm.parseJsonUintArray(vk, ".beta");
        uint256[] memory g = vm.parseJsonUintArray(vk, ".gamma");
        uint256[] memory d = vm.parseJsonUintArray(vk, ".delta");
        uint256 n = 0;
        while (true) {
            try vm.parseJsonUintArray(vk, string.concat(".ic[", _str(n), "]")) returns (uint256[] memory) {
                n++;
            } catch {
                break;
            }
        }
        uint256[2][] memory ic = new uint256[2][](n);
        for (uint256 i = 0; i < n; i++) {
            uint256[] memory p = vm.parseJsonUintArray(vk, string.concat(".ic[", _str(i), "]"));
            ic[i] = [p[0], p[1]];
        }
        v = new Groth16Verifier([a[0], a[1]], [b[0], b[1], b[2], b[3]], [g[0], g[1], g[2], g[3]], [d[0], d[1], d[2], d[3]], ic);

        string memory pj = vm.readFile(PROOF);
        input = vm.parseJsonUintArray(pj, ".publicInputs");
        uint256[] memory pa = vm.parseJsonUintArray(pj, ".proof.a");
        uint256[] memory pb = vm.parseJsonUintArray(pj, ".proof.b");
        uint256[] memory pc = vm.parseJsonUintArray(pj, ".proof.c");
        proof = [pa[0], pa[1], pb[0], pb[1], pb[2], pb[3], pc[0], pc[1]];
    }

    function testRealProofVerifies() public {
        (Groth16Verifier v, uint256[8] memory proof, uint256[] memory input) = _fixture();
        assertEq(v.icLength(), input.length + 1);
        uint256 before = gasleft();
        bool ok = v.verifyProof(proof, input);
        uint256 used = before - gasleft();
        assertTrue(ok, "real proof rejected");
        assertLe(used, 215_000, "verifier gas");
        // the fixture's named fields agree with its public inputs
        string memory pj = vm.readFile(PROOF);
        assertEq(vm.parseJsonUint(pj, ".datasetRoot"), input[0]);
        assertEq(vm.parseJsonUint(pj, ".entropy"), input[1]);
        assertEq(vm.parseJsonUint(pj, ".slotIndex"), input[2]);
    }

    function testRealProofRejectsFlippedInputs() public {
        (Groth16Verifier v, uint256[8] memory proof, uint256[] memory input) = _fixture();
        for (uint256 i = 0; i < input.length; i++) {
            uint256[] memory bad = new uint256[](input.length);
            for (uint256 j = 0; j < input.length; j++) {
                bad[j] = input[j];
            }
            bad[i] = (bad[i] + 1) % R;
            assertFalse(_accepts(v, proof, bad));
        }
    }

    function testRealProofRejectsFlippedProofWords() public {
        (Groth16Verifier v, uint256[8] memory proof, uint256[] memory input) = _fixture();
        for (uint256 w = 0; w < 8; w++) {
            uint256[8] memory bad = proof;
            bad[w] ^= 1;
            assertFalse(_accepts(v, bad, input));
        }
    }

    // ---------------------------------------------------------------- helpers

    /// A verifier "accepts" only when it returns true; a revert is a rejection too.
    function _accepts(Groth16Verifier v, uint256[8] memory proof, uint256[] memory input) internal view returns (bool) {
        try v.verifyProof(proof, input) returns (bool ok) {
            return ok;
        } catch {
            return false;
        }
    }

    function _mul(uint256[2] memory p, uint256 s) internal view returns (uint256[2] memory r) {
        (bool ok, bytes memory out) = address(7).staticcall(abi.encode(p[0], p[1], s));
        require(ok, "ecMul");
        (r[0], r[1]) = abi.decode(out, (uint256, uint256));
    }

    function _add(uint256[2] memory p, uint256[2] memory q) internal view returns (uint256[2] memory r) {
        (bool ok, bytes memory out) = address(6).staticcall(abi.encode(p[0], p[1], q[0], q[1]));
        require(ok, "ecAdd");
        (r[0], r[1]) = abi.decode(out, (uint256, uint256));
    }
}
