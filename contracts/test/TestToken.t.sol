// SPDX-License-Identifier: MIT
// TestToken tests: metadata, open mint, transfer, approve/transferFrom and their failures.
pragma solidity 0.8.37;

import {Test} from "./utils/Test.sol";
import {TestToken} from "../src/TestToken.sol";
import {IERC20} from "../src/interfaces/IERC20.sol";

contract TestTokenTest is Test {
    TestToken internal token;
    address internal alice = address(0xA11CE);
    address internal bob = address(0xB0B);

    function setUp() public {
        token = new TestToken("Vellum Test", "VLT");
    }

    function testMetadata() public view {
        assertEq(keccak256(bytes(token.name())), keccak256("Vellum Test"));
        assertEq(keccak256(bytes(token.symbol())), keccak256("VLT"));
        assertEq(token.decimals(), 18);
        assertEq(token.totalSupply(), 0);
    }

    function testAnyoneCanMint() public {
        vm.expectEmit(true, true, false, true, address(token));
        emit IERC20.Transfer(address(0), alice, 5);
        vm.prank(bob);
        token.mint(alice, 5);
        assertEq(token.balanceOf(alice), 5);
        assertEq(token.totalSupply(), 5);
        vm.expectRevert(TestToken.ZeroAddress.selector);
        token.mint(address(0), 1);
    }

    function testTransfer() public {
        token.mint(alice, 10);
        vm.prank(alice);
        assertTrue(token.transfer(bob, 4));
        assertEq(token.balanceOf(alice), 6);
        assertEq(token.balanceOf(bob), 4);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(TestToken.InsufficientBalance.selector, alice, 6, 7));
        token.transfer(bob, 7);
        vm.prank(alice);
        vm.expectRevert(TestToken.ZeroAddress.selector);
        token.transfer(address(0), 1);
    }

    function testApproveAndTransferFrom() public {
        token.mint(alice, 10);
        vm.prank(alice);
        vm.expectEmit(true, true, false, true, address(token));
        emit IERC20.Approval(alice, bob, 6);
        token.approve(bob, 6);
        assertEq(token.allowance(alice, bob), 6);
        vm.prank(bob);
        token.transferFrom(alice, bob, 5);
        assertEq(token.allowance(alice, bob), 1);
        assertEq(token.balanceOf(bob), 5);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(TestToken.InsufficientAllowance.selector, bob, 1, 2));
        token.transferFrom(alice, bob, 2);
    }

    function testInfiniteAllowanceIsNotSpent() public {
        token.mint(alice, 10);
        vm.prank(alice);
        token.approve(bob, type(uint256).max);
        vm.prank(bob);
        token.transferFrom(alice, bob, 10);
        assertEq(token.allowance(alice, bob), type(uint256).max);
    }

    function testFuzzTransferConservesSupply(uint256 minted, uint256 sent) public {
        minted = bound(minted, 0, type(uint128).max);
        sent = bound(sent, 0, minted);
        token.mint(alice, minted);
        vm.prank(alice);
        token.transfer(bob, sent);
        assertEq(token.balanceOf(alice) + token.balanceOf(bob), token.totalSupply());
        assertEq(token.balanceOf(bob), sent);
    }
}
