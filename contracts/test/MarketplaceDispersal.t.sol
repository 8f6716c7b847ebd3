// SPDX-License-Identifier: MIT
// Fair dispersal: a slot opens first to the hosts nearest its random position (XOR distance),
// the window widens until every host may reserve, so the fastest host wins about its share.
pragma solidity 0.8.37;

import "./utils/MarketplaceBase.sol";

contract MarketplaceDispersalTest is MarketplaceBase {
    uint256 internal constant WINDOW = 1 hours;
    uint256 internal constant BLOCK_TIME = 12;
    uint256 internal constant HOSTS = 20;
    address[] internal pool;

    function setUp() public override {
        super.setUp();
        MarketplaceConfig memory c = defaultConfig();
        c.dispersalWindow = uint32(WINDOW);
        market = IMarketplace(address(new Marketplace(c)));
        _fund(client);
        _fund(validator);
        for (uint256 i = 0; i < HOSTS; i++) {
            address h = address(uint160(uint256(keccak256(abi.encode("host", i)))));
            pool.push(h);
            _fund(h);
        }
    }

    /// First block time at or after `t` (hosts act in blocks).
    function _blockAt(uint256 t, uint256 origin) internal pure returns (uint256) {
        uint256 since = t - origin;
        return origin + (since + BLOCK_TIME - 1) / BLOCK_TIME * BLOCK_TIME;
    }

    /// Pool host 0 always acts first: whenever it may reserve a slot in a block, it gets it.
    /// Every host reserves as soon as a block lets it. The fast host's share must stay within
    /// twice its fair share, and every slot must still be filled before expiry.
    function testFastestHostWinsAboutItsFairShare() public {
        uint256 requests = 25;
        uint256 slots = 4;
        uint256 fastWins;
        for (uint256 q = 0; q < requests; q++) {
            (bytes32 id, Request memory r) = _post(uint16(slots));
            uint256 origin = block.timestamp;
            (,, uint64 expiresAt) = market.requestTimes(id);
            // slots in the order their first host becomes able to act
            uint256[] memory readyAt = new uint256[](slots);
            address[] memory winner = new address[](slots);
            for (uint256 i = 0; i < slots; i++) {
                readyAt[i] = type(uint256).max;
                for (uint256 h = 0; h < HOSTS; h++) {
                    uint256 t = _blockAt(market.eligibleAt(id, uint64(i), pool[h]), origin);
                    if (t < readyAt[i]) (readyAt[i], winner[i]) = (t, pool[h]);
                }
                assertLe(readyAt[i], origin + WINDOW + BLOCK_TIME, "eligible within the window");
            }
            for (uint256 k = 0; k < slots; k++) {
                uint256 i = _earliest(readyAt);
                if (block.timestamp < readyAt[i]) vm.warp(readyAt[i]);
                // before the winner's block, the host that comes next is not yet eligible
                _fill(id, i, winner[i]);
                if (winner[i] == pool[0]) fastWins++;
                readyAt[i] = type(uint256).max;
            }
            assertLe(block.timestamp, expiresAt, "filled before expiry");
            assertTrue(market.requestState(id) == RequestState.Started, "every slot filled");
            r;
        }
        uint256 fair = requests * slots / HOSTS;
        assertLe(fastWins, 2 * fair, "at most twice the fair share");
    }

    function _earliest(uint256[] memory readyAt) internal pure returns (uint256 best) {
        for (uint256 i = 1; i < readyAt.length; i++) {
            if (readyAt[i] < readyAt[best]) best = i;
        }
    }

    function testHostOutsideTheWindowCannotReserveYet() public {
        (bytes32 id,) = _post(1);
        uint256 origin = block.timestamp;
        // the host farthest from the slot's position waits longest
        address far;
        uint256 latest;
        for (uint256 h = 0; h < HOSTS; h++) {
            uint256 t = market.eligibleAt(id, 0, pool[h]);
            assertLe(t, origin + WINDOW, "everyone is eligible once the window is full");
            if (t > latest) (latest, far) = (t, pool[h]);
        }
        assertTrue(latest > origin, "not everyone at once");
        vm.prank(far);
        assertFalse(market.canReserveSlot(id, 0));
        vm.prank(far);
        vm.expectRevert(NotYetEligible.selector);
        market.reserveSlot(id, 0);
        vm.warp(latest);
        vm.prank(far);
        market.reserveSlot(id, 0);
    }

    function testRepairRoundsGetANewPositionAndWindow() public {
        Request memory r = _newRequest(3);
        r.ask.maxSlotLoss = 1;
        r.ask.repairThreshold = 1;
        bytes32 id = _submitRequest(r);
        uint256 requestedAt = block.timestamp;
        uint256 firstRound = market.eligibleAt(id, 1, pool[5]);
        vm.warp(block.timestamp + WINDOW);
        _fill(id, 0, pool[0]);
        _fill(id, 1, pool[1]);
        _fill(id, 2, pool[2]);
        vm.expectRevert(SlotNotAvailable.selector);
        market.eligibleAt(id, 1, pool[5]);
        for (uint256 k = 0; k < 3; k++) {
            _missOnce(id, 1);
        }
        assertTrue(market.slotState(_slot(id, 1)) == SlotState.Repair);
        uint256 openedAt = block.timestamp;
        uint256 repairRound = market.eligibleAt(id, 1, pool[5]);
        assertTrue(repairRound >= openedAt && repairRound <= openedAt + WINDOW, "the window restarts at the opening");
        assertTrue(repairRound - openedAt != firstRound - requestedAt, "a new position for the repair round");
    }
}
