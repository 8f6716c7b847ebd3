// SPDX-License-Identifier: MIT
// BandwidthChannels: one-way payment channels in the marketplace's token, through which a
// downloader pays a provider per byte served with signed off-chain vouchers.
pragma solidity 0.8.37;

import {IERC20} from "./interfaces/IERC20.sol";

/// @title Vellum bandwidth payment channels
/// @notice A payer (a downloader) opens a channel to one provider with a deposit, and may top it
///  up. As blocks arrive it signs EIP-712 vouchers `Voucher(channel, cumulative)` for the total
///  it owes on the channel so far. The provider redeems the highest voucher it holds whenever it
///  chooses, as often as it likes, and is paid the increase over what it already redeemed. The
///  payer may ask to close: the provider then has `closeDelay` seconds to redeem, after which the
///  payer takes back what was not redeemed. The provider may end a channel at once, taking its
///  last voucher's amount and returning the rest.
///
///  - A voucher names its channel, and the EIP-712 domain names the chain and this contract: a
///    voucher pays on one channel of one deployment of one chain only.
///  - Vouchers are cumulative: one at or below what was redeemed pays nothing and is refused,
///    so no voucher is paid twice.
///  - A voucher above the channel's deposit is refused whole (over budget).
///  - Signatures are 65 bytes with a low s (no malleable twin) and recover to the payer.
///  - The token balance equals, over the channels not yet settled, deposit minus redeemed.
contract BandwidthChannels {
    struct Channel {
        address payer;
        uint64 closesAt; // 0 while open; else when the payer may reclaim
        bool settled; // reclaimed or ended: nothing more moves
        address provider;
        uint128 deposit; // tokens put in, in all
        uint128 redeemed; // tokens paid to the provider so far
    }

    /// keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    bytes32 private constant DOMAIN_TYPEHASH = 0x8b73c3c69bb8fe3d512ecc4cf759cc79239f7b179b0ffacaa9a75d522b39400f;
    /// keccak256("Voucher(bytes32 channel,uint256 cumulative)")
    bytes32 public constant VOUCHER_TYPEHASH = keccak256("Voucher(bytes32 channel,uint256 cumulative)");
    /// Half the secp256k1 group order: signatures with a larger s are the malleable twins.
    uint256 private constant HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    IERC20 public immutable token;
    /// Seconds a provider has to redeem once the payer asks to close.
    uint64 public immutable closeDelay;
    uint256 private immutable deployChainId;
    bytes32 private immutable deployDomain;

    mapping(bytes32 => Channel) private channels;
    /// Channels each payer has opened (the last part of a channel's id).
    mapping(address => uint256) public opened;

    event ChannelOpened(bytes32 indexed id, address indexed payer, address indexed provider, uint256 deposit);
    event ChannelToppedUp(bytes32 indexed id, uint256 amount, uint256 deposit);
    event VoucherRedeemed(bytes32 indexed id, uint256 cumulative, uint256 paid);
    event CloseRequested(bytes32 indexed id, uint256 closesAt);
    event ChannelSettled(bytes32 indexed id, uint256 toProvider, uint256 toPayer);

    error ZeroAmount();
    error BadProvider();
    error UnknownChannel(bytes32 id);
    error NotPayer();
    error NotProvider();
    error Settled();
    error Closing();
    error ClosePassed(uint256 closesAt);
    error NotYetClosable(uint256 closesAt);
    error NotIncreasing(uint256 cumulative, uint256 redeemed);
    error OverBudget(uint256 cumulative, uint256 deposit);
    error BadSignature();
    error DepositTooLarge();
    error TransferFailed();

    constructor(IERC20 token_, uint64 closeDelay_) {
        if (address(token_) == address(0) || closeDelay_ == 0) revert ZeroAmount();
        token = token_;
        closeDelay = closeDelay_;
        deployChainId = block.chainid;
        deployDomain = _domain();
    }

    // ---------------------------------------------------------------- payer

    /// @notice Opens a channel to `provider` with `amount` tokens (approved beforehand).
    function open(address provider, uint256 amount) external returns (bytes32 id) {
        if (provider == address(0) || provider == msg.sender) revert BadProvider();
        if (amount == 0) revert ZeroAmount();
        if (amount > type(uint128).max) revert DepositTooLarge();
        id = keccak256(abi.encode(block.chainid, address(this), msg.sender, provider, opened[msg.sender]++));
        channels[id] = Channel({
            payer: msg.sender,
            closesAt: 0,
            settled: false,
            provider: provider,
            deposit: uint128(amount),
            redeemed: 0
        });
        emit ChannelOpened(id, msg.sender, provider, amount);
        _pull(msg.sender, amount);
    }

    /// @notice Adds `amount` tokens to an open channel; a pending close request is withdrawn.
    function topUp(bytes32 id, uint256 amount) external {
        Channel storage c = _live(id);
        if (msg.sender != c.payer) revert NotPayer();
        if (amount == 0) revert ZeroAmount();
        uint256 deposit = uint256(c.deposit) + amount;
        if (deposit > type(uint128).max) revert DepositTooLarge();
        c.deposit = uint128(deposit);
        c.closesAt = 0;
        emit ChannelToppedUp(id, amount, deposit);
        _pull(msg.sender, amount);
    }

    /// @notice Asks to close: after `closeDelay` seconds the payer may reclaim what the provider
    ///  has not redeemed by then.
    function requestClose(bytes32 id) external {
        Channel storage c = _live(id);
        if (msg.sender != c.payer) revert NotPayer();
        if (c.closesAt != 0) revert Closing();
        uint64 at = uint64(block.timestamp) + closeDelay;
        c.closesAt = at;
        emit CloseRequested(id, at);
    }

    /// @notice Takes back the unredeemed deposit once the close delay has passed.
    function reclaim(bytes32 id) external {
        Channel storage c = _live(id);
        if (msg.sender != c.payer) revert NotPayer();
        if (c.closesAt == 0 || block.timestamp < c.closesAt) revert NotYetClosable(c.closesAt);
        uint256 rest = uint256(c.deposit) - c.redeemed;
        c.settled = true;
        emit ChannelSettled(id, 0, rest);
        _push(c.payer, rest);
    }

    // ---------------------------------------------------------------- provider

    /// @notice Redeems a voucher for `cumulative` tokens signed by the channel's payer: pays the
    ///  provider the increase over what it redeemed before.
    function redeem(bytes32 id, uint256 cumulative, bytes calldata signature) external {
        Channel storage c = _live(id);
        if (msg.sender != c.provider) revert NotProvider();
        if (c.closesAt != 0 && block.timestamp >= c.closesAt) revert ClosePassed(c.closesAt);
        uint256 paid = _accept(id, c, cumulative, signature);
        _push(c.provider, paid);
    }

    /// @notice Ends the channel at once: redeems `cumulative` if a signature is given (an empty
    ///  one redeems nothing more) and returns the rest of the deposit to the payer.
    function end(bytes32 id, uint256 cumulative, bytes calldata signature) external {
        Channel storage c = _live(id);
        if (msg.sender != c.provider) revert NotProvider();
        if (signature.length != 0 && c.closesAt != 0 && block.timestamp >= c.closesAt) {
            revert ClosePassed(c.closesAt);
        }
        uint256 paid = signature.length == 0 ? 0 : _accept(id, c, cumulative, signature);
        uint256 rest = uint256(c.deposit) - c.redeemed;
        c.settled = true;
        emit ChannelSettled(id, paid, rest);
        _push(c.provider, paid);
        _push(c.payer, rest);
    }

    // ---------------------------------------------------------------- views

    /// @notice A channel's state.
    function getChannel(bytes32 id) external view returns (Channel memory) {
        return channels[id];
    }

    /// @notice The EIP-712 domain separator (name "Vellum bandwidth", version "1").
    function domainSeparator() public view returns (bytes32) {
        return block.chainid == deployChainId ? deployDomain : _domain();
    }

    /// @notice The digest a payer signs for a voucher.
    function voucherDigest(bytes32 id, uint256 cumulative) public view returns (bytes32) {
        bytes32 structHash = keccak256(abi.encode(VOUCHER_TYPEHASH, id, cumulative));
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    // ---------------------------------------------------------------- internals

    function _domain() private view returns (bytes32) {
        return keccak256(
            abi.encode(
                DOMAIN_TYPEHASH, keccak256("Vellum bandwidth"), keccak256("1"), block.chainid, address(this)
            )
        );
    }

    function _live(bytes32 id) private view returns (Channel storage c) {
        c = channels[id];
        if (c.payer == address(0)) revert UnknownChannel(id);
        if (c.settled) revert Settled();
    }

    /// Checks a voucher and records it; returns the amount newly owed to the provider.
    function _accept(bytes32 id, Channel storage c, uint256 cumulative, bytes calldata signature)
        private
        returns (uint256 paid)
    {
        if (cumulative <= c.redeemed) revert NotIncreasing(cumulative, c.redeemed);
        if (cumulative > c.deposit) revert OverBudget(cumulative, c.deposit);
        if (_signer(voucherDigest(id, cumulative), signature) != c.payer) revert BadSignature();
        paid = cumulative - c.redeemed;
        c.redeemed = uint128(cumulative); // ≤ deposit, which fits
        emit VoucherRedeemed(id, cumulative, paid);
    }

    function _signer(bytes32 digest, bytes calldata signature) private pure returns (address) {
        if (signature.length != 65) revert BadSignature();
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > HALF_ORDER || (v != 27 && v != 28)) revert BadSignature();
        address who = ecrecover(digest, v, r, s);
        if (who == address(0)) revert BadSignature();
        return who;
    }

    function _pull(address from, uint256 amount) private {
        if (!token.transferFrom(from, address(this), amount)) revert TransferFailed();
    }

    function _push(address to, uint256 amount) private {
        if (amount != 0 && !token.transfer(to, amount)) revert TransferFailed();
    }
}
