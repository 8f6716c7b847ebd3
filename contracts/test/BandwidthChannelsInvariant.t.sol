// SPDX-License-Identifier: MIT
// Invariant test: the channels contract holds exactly the deposits not yet paid or refunded.
pragma solidity 0.8.37;

import {Test} from "./utils/Test.sol";
import {TestToken} from "../src/TestToken.sol";
import {IERC20} from "../src/interfaces/IERC20.sol";
import {BandwidthChannels} from "../src/BandwidthChannels.sol";
import {ChannelHandler} from "./invariant/ChannelHandler.sol";

contract BandwidthChannelsInvariantTest is Test {
    TestToken internal token;
    BandwidthChannels internal channels;
    ChannelHandler internal handler;

    function setUp() public {
        token = new TestToken("Vellum Test", "VLT");
        channels = new BandwidthChannels(IERC20(address(token)), 600);
        handler = new ChannelHandler(channels, token);
        targetContract(address(handler));
    }

    /// Deposits equal what was paid to providers, what was refunded to payers, and what the
    /// contract still holds; what it holds is, channel by channel, deposit minus redeemed.
    function invariant_depositsEqualPaidPlusRefundable() public view {
        uint256 held = token.balanceOf(address(channels));
        assertEq(handler.deposited(), handler.paidOut() + handler.refunded() + held, "deposits are accounted for");
        uint256 owed;
        for (uint256 i = 0; i < handler.idCount(); i++) {
            BandwidthChannels.Channel memory c = channels.getChannel(handler.ids(i));
            assertLe(uint256(c.redeemed), uint256(c.deposit), "never more redeemed than deposited");
            if (!c.settled) owed += uint256(c.deposit) - c.redeemed;
        }
        assertEq(held, owed, "the balance is what the open channels hold");
    }
}
