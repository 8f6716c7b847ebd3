// SPDX-License-Identifier: MIT
// Drives BandwidthChannels with random opens, top-ups, vouchers (good, stale, over budget,
// forged), close requests, reclaims and early ends, for the invariant test.
pragma solidity 0.8.37;

import {Test} from "../utils/Test.sol";
import {TestToken} from "../../src/TestToken.sol";
import {BandwidthChannels} from "../../src/BandwidthChannels.sol";

contract ChannelHandler is Test {
    BandwidthChannels internal channels;
    TestToken internal token;
    uint256[3] internal payerKeys = [uint256(0xA1), 0xA2, 0xA3];
    address[2] internal providers = [address(0xB1), address(0xB2)];

    bytes32[] public ids;
    /// The largest voucher each channel's payer has signed so far.
    mapping(bytes32 => uint256) public signed;
    uint256 public deposited;
    uint256 public paidOut; // to providers
    uint256 public refunded; // to payers

    constructor(BandwidthChannels channels_, TestToken token_) {
        channels = channels_;
        token = token_;
        for (uint256 i = 0; i < payerKeys.length; i++) {
            address p = vm.addr(payerKeys[i]);
            token.mint(p, 1e30);
            vm.prank(p);
            token.approve(address(channels), type(uint256).max);
        }
    }

    function idCount() external view returns (uint256) {
        return ids.length;
    }

    function _pick(uint256 seed) internal view returns (bytes32 id, bool ok) {
        if (ids.length == 0) return (bytes32(0), false);
        return (ids[seed % ids.length], true);
    }

    function _keyOf(address payer) internal view returns (uint256) {
        for (uint256 i = 0; i < payerKeys.length; i++) {
            if (vm.addr(payerKeys[i]) == payer) return payerKeys[i];
        }
        return 1;
    }

    function open(uint256 who, uint256 to, uint256 amount) external {
        amount = bound(amount, 1, 1e24);
        address payer = vm.addr(payerKeys[who % payerKeys.length]);
        vm.prank(payer);
        bytes32 id = channels.open(providers[to % providers.length], amount);
        ids.push(id);
        deposited += amount;
    }

    function topUp(uint256 seed, uint256 amount) external {
        (bytes32 id, bool ok) = _pick(seed);
        if (!ok) return;
        amount = bound(amount, 1, 1e24);
        BandwidthChannels.Channel memory c = channels.getChannel(id);
        if (c.settled) return;
        vm.prank(c.payer);
        channels.topUp(id, amount);
        deposited += amount;
    }

    /// A voucher from the payer for `more` above the last one signed, redeemed by the provider
    /// (refused when over budget or past the close).
    function pay(uint256 seed, uint256 more, bool forge) external {
        (bytes32 id, bool ok) = _pick(seed);
        if (!ok) return;
        BandwidthChannels.Channel memory c = channels.getChannel(id);
        if (c.settled) return;
        uint256 cumulative = signed[id] + bound(more, 1, 1e24);
        uint256 key = forge ? 0xDEAD : _keyOf(c.payer);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, channels.voucherDigest(id, cumulative));
        if (!forge) signed[id] = cumulative;
        uint256 before = token.balanceOf(c.provider);
        vm.prank(c.provider);
        try channels.redeem(id, cumulative, abi.encodePacked(r, s, v)) {
            assertTrue(!forge && cumulative <= c.deposit, "only a good voucher within budget pays");
            paidOut += token.balanceOf(c.provider) - before;
        } catch {}
    }

    /// The provider replays an old voucher: never pays.
    function replay(uint256 seed) external {
        (bytes32 id, bool ok) = _pick(seed);
        if (!ok) return;
        BandwidthChannels.Channel memory c = channels.getChannel(id);
        if (c.settled || c.redeemed == 0) return;
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(_keyOf(c.payer), channels.voucherDigest(id, c.redeemed));
        vm.prank(c.provider);
        try channels.redeem(id, c.redeemed, abi.encodePacked(r, s, v)) {
            fail("a replayed voucher paid");
        } catch {}
    }

    function requestClose(uint256 seed) external {
        (bytes32 id, bool ok) = _pick(seed);
        if (!ok) return;
        BandwidthChannels.Channel memory c = channels.getChannel(id);
        if (c.settled || c.closesAt != 0) return;
        vm.prank(c.payer);
        channels.requestClose(id);
    }

    function wait(uint256 secs) external {
        vm.warp(block.timestamp + bound(secs, 1, 2 * channels.closeDelay()));
    }

    function reclaim(uint256 seed) external {
        (bytes32 id, bool ok) = _pick(seed);
        if (!ok) return;
        BandwidthChannels.Channel memory c = channels.getChannel(id);
        uint256 before = token.balanceOf(c.payer);
        vm.prank(c.payer);
        try channels.reclaim(id) {
            refunded += token.balanceOf(c.payer) - before;
        } catch {}
    }

    function end(uint256 seed) external {
        (bytes32 id, bool ok) = _pick(seed);
        if (!ok) return;
        BandwidthChannels.Channel memory c = channels.getChannel(id);
        if (c.settled) return;
        uint256 before = token.balanceOf(c.payer);
        vm.prank(c.provider);
        channels.end(id, 0, "");
        refunded += token.balanceOf(c.payer) - before;
    }
}
