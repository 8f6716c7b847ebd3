// SPDX-License-Identifier: MIT
// BandwidthChannels tests: opening, vouchers redeemed for their increase, replay (across
// channels, deployments and chains), forged, malleable, stale and over-budget vouchers refused,
// the close delay, the provider's early end, and a fuzzed sequence of vouchers.
pragma solidity 0.8.37;

import {Test} from "./utils/Test.sol";
import {TestToken} from "../src/TestToken.sol";
import {IERC20} from "../src/interfaces/IERC20.sol";
import {BandwidthChannels} from "../src/BandwidthChannels.sol";

contract BandwidthChannelsTest is Test {
    uint64 internal constant DELAY = 3600;
    uint256 internal constant PAYER_KEY = 0xA11CE;
    uint256 internal constant OTHER_KEY = 0xB0B;
    uint256 internal constant HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    uint256 internal constant ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    TestToken internal token;
    BandwidthChannels internal channels;
    address internal payer;
    address internal provider = address(0xBEEF);
    address internal stranger = address(0xCAFE);

    function setUp() public {
        token = new TestToken("Vellum Test", "VLT");
        channels = new BandwidthChannels(IERC20(address(token)), DELAY);
        payer = vm.addr(PAYER_KEY);
        token.mint(payer, 1e24);
        vm.prank(payer);
        token.approve(address(channels), type(uint256).max);
    }

    function _open(uint256 amount) internal returns (bytes32 id) {
        vm.prank(payer);
        id = channels.open(provider, amount);
    }

    function _voucher(BandwidthChannels on, uint256 key, bytes32 id, uint256 cumulative)
        internal
        view
        returns (bytes memory)
    {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, on.voucherDigest(id, cumulative));
        return abi.encodePacked(r, s, v);
    }

    function _sign(bytes32 id, uint256 cumulative) internal view returns (bytes memory) {
        return _voucher(channels, PAYER_KEY, id, cumulative);
    }

    function _redeem(bytes32 id, uint256 cumulative, bytes memory sig) internal {
        vm.prank(provider);
        channels.redeem(id, cumulative, sig);
    }

    function testOpenTakesTheDepositAndNamesTheChannel() public {
        bytes32 id = _open(1000);
        BandwidthChannels.Channel memory c = channels.getChannel(id);
        assertEq(c.payer, payer);
        assertEq(c.provider, provider);
        assertEq(uint256(c.deposit), 1000);
        assertEq(token.balanceOf(address(channels)), 1000);
        assertTrue(_open(1000) != id, "a second channel to the same provider has its own id");
        assertEq(channels.opened(payer), 2);
    }

    function testOpenRefusesNonsense() public {
        vm.startPrank(payer);
        vm.expectRevert(BandwidthChannels.ZeroAmount.selector);
        channels.open(provider, 0);
        vm.expectRevert(BandwidthChannels.BadProvider.selector);
        channels.open(address(0), 5);
        vm.expectRevert(BandwidthChannels.BadProvider.selector);
        channels.open(payer, 5);
        vm.expectRevert(BandwidthChannels.DepositTooLarge.selector);
        channels.open(provider, uint256(type(uint128).max) + 1);
        vm.stopPrank();
    }

    function testVouchersPayTheirIncreaseOnce() public {
        bytes32 id = _open(1000);
        _redeem(id, 300, _sign(id, 300));
        assertEq(token.balanceOf(provider), 300);
        _redeem(id, 700, _sign(id, 700));
        assertEq(token.balanceOf(provider), 700, "only the increase is paid");
        bytes memory again = _sign(id, 700);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(BandwidthChannels.NotIncreasing.selector, 700, 700));
        channels.redeem(id, 700, again);
        bytes memory older = _sign(id, 300);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(BandwidthChannels.NotIncreasing.selector, 300, 700));
        channels.redeem(id, 300, older);
        assertEq(token.balanceOf(address(channels)), 300);
    }

    function testOverBudgetVoucherIsRefusedWhole() public {
        bytes32 id = _open(1000);
        bytes memory sig = _sign(id, 1001);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(BandwidthChannels.OverBudget.selector, 1001, 1000));
        channels.redeem(id, 1001, sig);
        // A top-up makes the same voucher good.
        vm.prank(payer);
        channels.topUp(id, 1);
        _redeem(id, 1001, sig);
        assertEq(token.balanceOf(provider), 1001);
    }

    function testForgedVouchersAreRefused() public {
        bytes32 id = _open(1000);
        bytes memory byOther = _voucher(channels, OTHER_KEY, id, 500);
        vm.prank(provider);
        vm.expectRevert(BandwidthChannels.BadSignature.selector);
        channels.redeem(id, 500, byOther);
        // The payer's signature over another amount.
        bytes memory for400 = _sign(id, 400);
        vm.prank(provider);
        vm.expectRevert(BandwidthChannels.BadSignature.selector);
        channels.redeem(id, 500, for400);
        // Truncated and with a bad v.
        bytes memory good = _sign(id, 500);
        bytes memory short = new bytes(64);
        for (uint256 i = 0; i < 64; i++) {
            short[i] = good[i];
        }
        vm.prank(provider);
        vm.expectRevert(BandwidthChannels.BadSignature.selector);
        channels.redeem(id, 500, short);
        bytes memory badV = abi.encodePacked(good);
        badV[64] = bytes1(uint8(29));
        vm.prank(provider);
        vm.expectRevert(BandwidthChannels.BadSignature.selector);
        channels.redeem(id, 500, badV);
        // Only the provider redeems.
        vm.prank(stranger);
        vm.expectRevert(BandwidthChannels.NotProvider.selector);
        channels.redeem(id, 500, good);
        _redeem(id, 500, good);
    }

    function testMalleableTwinIsRefused() public {
        bytes32 id = _open(1000);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(PAYER_KEY, channels.voucherDigest(id, 500));
        assertLe(uint256(s), HALF_ORDER, "forge signs with a low s");
        bytes memory twin = abi.encodePacked(r, bytes32(ORDER - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        vm.prank(provider);
        vm.expectRevert(BandwidthChannels.BadSignature.selector);
        channels.redeem(id, 500, twin);
    }

    function testVouchersDoNotReplayAcrossChannelsDeploymentsOrChains() public {
        bytes32 a = _open(1000);
        bytes32 b = _open(1000);
        bytes memory forA = _sign(a, 400);
        vm.prank(provider);
        vm.expectRevert(BandwidthChannels.BadSignature.selector);
        channels.redeem(b, 400, forA);
        // Another deployment: a voucher signed for it does not pay here.
        BandwidthChannels elsewhere = new BandwidthChannels(IERC20(address(token)), DELAY);
        bytes memory forElsewhere = _voucher(elsewhere, PAYER_KEY, a, 400);
        vm.prank(provider);
        vm.expectRevert(BandwidthChannels.BadSignature.selector);
        channels.redeem(a, 400, forElsewhere);
        // Another chain (a fork with a new id): the domain changes with it.
        bytes32 before = channels.domainSeparator();
        vm.chainId(block.chainid + 1);
        assertTrue(channels.domainSeparator() != before, "the domain names the chain");
        vm.prank(provider);
        vm.expectRevert(BandwidthChannels.BadSignature.selector);
        channels.redeem(a, 400, forA);
    }

    function testPayerReclaimsAfterTheDelayAndTheProviderRedeemsWithinIt() public {
        bytes32 id = _open(1000);
        bytes memory sig = _sign(id, 600);
        vm.prank(payer);
        channels.requestClose(id);
        vm.prank(payer);
        vm.expectRevert(abi.encodeWithSelector(BandwidthChannels.NotYetClosable.selector, block.timestamp + DELAY));
        channels.reclaim(id);
        vm.warp(block.timestamp + DELAY - 1);
        _redeem(id, 600, sig); // in time
        vm.warp(block.timestamp + 1);
        bytes memory late = _sign(id, 700);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(BandwidthChannels.ClosePassed.selector, block.timestamp));
        channels.redeem(id, 700, late);
        uint256 before = token.balanceOf(payer);
        vm.prank(payer);
        channels.reclaim(id);
        assertEq(token.balanceOf(payer) - before, 400);
        assertEq(token.balanceOf(address(channels)), 0);
        vm.prank(payer);
        vm.expectRevert(BandwidthChannels.Settled.selector);
        channels.reclaim(id);
    }

    function testTopUpWithdrawsACloseRequest() public {
        bytes32 id = _open(1000);
        vm.startPrank(payer);
        channels.requestClose(id);
        vm.expectRevert(BandwidthChannels.Closing.selector);
        channels.requestClose(id);
        channels.topUp(id, 10);
        vm.warp(block.timestamp + DELAY);
        vm.expectRevert(abi.encodeWithSelector(BandwidthChannels.NotYetClosable.selector, 0));
        channels.reclaim(id);
        vm.stopPrank();
        vm.prank(stranger);
        vm.expectRevert(BandwidthChannels.NotPayer.selector);
        channels.requestClose(id);
    }

    function testProviderEndsAtOnce() public {
        bytes32 id = _open(1000);
        _redeem(id, 100, _sign(id, 100));
        bytes memory sig = _sign(id, 250);
        uint256 before = token.balanceOf(payer);
        vm.prank(provider);
        channels.end(id, 250, sig);
        assertEq(token.balanceOf(provider), 250);
        assertEq(token.balanceOf(payer) - before, 750);
        assertEq(token.balanceOf(address(channels)), 0);
        bytes memory late = _sign(id, 300);
        vm.prank(provider);
        vm.expectRevert(BandwidthChannels.Settled.selector);
        channels.redeem(id, 300, late);
        // Ending without a voucher returns everything unredeemed.
        bytes32 other = _open(500);
        uint256 opened = token.balanceOf(payer);
        vm.prank(provider);
        channels.end(other, 0, "");
        assertEq(token.balanceOf(payer) - opened, 500);
        assertEq(token.balanceOf(provider), 250, "nothing more to the provider");
    }

    function testUnknownChannelsAreRefused() public {
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(BandwidthChannels.UnknownChannel.selector, bytes32(uint256(1))));
        channels.redeem(bytes32(uint256(1)), 1, "");
    }

    /// Any sequence of vouchers: the provider ends with the largest one redeemed (never more
    /// than the deposit), the payer with the rest, and the contract with nothing.
    function testFuzzVoucherSequences(uint128 deposit, uint64[6] memory steps, uint8 redeemMask) public {
        deposit = uint128(bound(deposit, 1, 1e24));
        bytes32 id = _open(deposit);
        uint256 cumulative;
        uint256 redeemed;
        for (uint256 i = 0; i < steps.length; i++) {
            cumulative += steps[i];
            if (redeemMask & (1 << i) == 0 || cumulative == redeemed) continue;
            bytes memory sig = _sign(id, cumulative);
            vm.prank(provider);
            if (cumulative > deposit) {
                vm.expectRevert(abi.encodeWithSelector(BandwidthChannels.OverBudget.selector, cumulative, deposit));
                channels.redeem(id, cumulative, sig);
            } else {
                channels.redeem(id, cumulative, sig);
                redeemed = cumulative;
            }
        }
        assertEq(token.balanceOf(provider), redeemed);
        vm.prank(payer);
        channels.requestClose(id);
        vm.warp(block.timestamp + DELAY);
        uint256 before = token.balanceOf(payer);
        vm.prank(payer);
        channels.reclaim(id);
        assertEq(token.balanceOf(payer) - before, deposit - redeemed);
        assertEq(token.balanceOf(address(channels)), 0);
    }
}
