// SPDX-License-Identifier: MIT
pragma solidity ^0.8.25;

import {Float, LibTestFloat} from "./LibTestFloat.sol";

// IOrderBookV5 structs, field for field (rain.orderbook.interface @ dae86d79); IRaindexV6
// imports them unchanged.
struct EvaluableV4 {
    address interpreter;
    address store;
    bytes bytecode;
}

struct SignedContextV1 {
    address signer;
    bytes32[] context;
    bytes signature;
}

struct IOV2 {
    address token;
    bytes32 vaultId;
}

struct OrderV4 {
    address owner;
    EvaluableV4 evaluable;
    IOV2[] validInputs;
    IOV2[] validOutputs;
    bytes32 nonce;
}

struct TakeOrderConfigV4 {
    OrderV4 order;
    uint256 inputIOIndex;
    uint256 outputIOIndex;
    SignedContextV1[] signedContext;
}

struct ClearConfigV2 {
    uint256 aliceInputIOIndex;
    uint256 aliceOutputIOIndex;
    uint256 bobInputIOIndex;
    uint256 bobOutputIOIndex;
    bytes32 aliceBountyVaultId;
    bytes32 bobBountyVaultId;
}

struct ClearStateChangeV2 {
    Float aliceOutput;
    Float bobOutput;
    Float aliceInput;
    Float bobInput;
}

struct TaskV2 {
    EvaluableV4 evaluable;
    SignedContextV1[] signedContext;
}

interface IERC20Like {
    function decimals() external view returns (uint8);
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// What the V5 and V6 test orderbooks share: orders, vault balances (as rain Floats), takes
/// and clears emitting the IOrderBookV5 events with exactly their ABI (IRaindexV6 declares
/// the same events). It does not run Rainlang: the caller names the amounts, and
/// "evaluating" an order reads the Pyth-like oracle whose address is the order's
/// `evaluable.interpreter` for the feed id in the first word of its bytecode, so a
/// transaction trace carries a real oracle call, as a production order's would.
/// The concrete books add their own deposit/withdraw functions.
abstract contract TestOrderBookBase {
    using LibTestFloat for Float;

    event TakeOrderV3(address sender, TakeOrderConfigV4 config, Float input, Float output);
    event ClearV3(address sender, OrderV4 alice, OrderV4 bob, ClearConfigV2 clearConfig);
    event AfterClearV2(address sender, ClearStateChangeV2 clearStateChange);
    event DepositV2(address sender, address token, bytes32 vaultId, uint256 depositAmountUint256);
    event WithdrawV2(
        address sender, address token, bytes32 vaultId, Float targetAmount, Float withdrawAmount, uint256 withdrawAmountUint256
    );
    event AddOrderV3(address sender, bytes32 orderHash, OrderV4 order);
    event RemoveOrderV3(address sender, bytes32 orderHash, OrderV4 order);
    event OrderNotFound(address sender, address owner, bytes32 orderHash);
    event ContextV2(address sender, bytes32[][] context);

    error SameOwner();
    error TokenMismatch();
    error NotOrderOwner();
    error ZeroDepositAmount(address sender, address token, bytes32 vaultId);
    error InsufficientVault(address owner, address token, bytes32 vaultId);

    mapping(bytes32 => bool) public orderLive;
    mapping(address => mapping(address => mapping(bytes32 => Float))) internal vaults;

    function orderHash(OrderV4 memory order) public pure returns (bytes32) {
        return keccak256(abi.encode(order));
    }

    function orderExists(bytes32 hash) external view returns (bool) {
        return orderLive[hash];
    }

    function vaultBalance2(address owner, address token, bytes32 vaultId) external view returns (Float) {
        return vaults[owner][token][vaultId];
    }

    function addOrder(OrderV4 calldata order) external returns (bytes32 hash) {
        if (order.owner != msg.sender) revert NotOrderOwner();
        hash = orderHash(order);
        orderLive[hash] = true;
        emit AddOrderV3(msg.sender, hash, order);
    }

    function removeOrder(OrderV4 calldata order) external returns (bool removed) {
        if (order.owner != msg.sender) revert NotOrderOwner();
        bytes32 hash = orderHash(order);
        removed = orderLive[hash];
        orderLive[hash] = false;
        emit RemoveOrderV3(msg.sender, hash, order);
    }

    /// Take each order for `takerInputs[i]` of its output token, paying `takerOutputs[i]`
    /// of its input token (the taker's view, as in the event).
    function takeOrders(TakeOrderConfigV4[] calldata orders, Float[] calldata takerInputs, Float[] calldata takerOutputs)
        external
    {
        require(orders.length == takerInputs.length && orders.length == takerOutputs.length, "lengths");
        for (uint256 i = 0; i < orders.length; i++) {
            TakeOrderConfigV4 calldata config = orders[i];
            OrderV4 calldata order = config.order;
            bytes32 hash = orderHash(order);
            if (!orderLive[hash]) {
                emit OrderNotFound(msg.sender, order.owner, hash);
                continue;
            }
            IOV2 calldata input = order.validInputs[config.inputIOIndex];
            IOV2 calldata output = order.validOutputs[config.outputIOIndex];
            if (input.token == output.token) revert TokenMismatch();
            _evaluate(order);
            _debit(order.owner, output.token, output.vaultId, takerInputs[i]);
            _credit(order.owner, input.token, input.vaultId, takerOutputs[i]);
            emit TakeOrderV3(msg.sender, config, takerInputs[i], takerOutputs[i]);
            uint256 pay = takerOutputs[i].toFixed(IERC20Like(input.token).decimals(), true);
            uint256 receive_ = takerInputs[i].toFixed(IERC20Like(output.token).decimals(), false);
            require(IERC20Like(input.token).transferFrom(msg.sender, address(this), pay), "pay");
            require(IERC20Like(output.token).transfer(msg.sender, receive_), "receive");
        }
        _settle();
    }

    /// Clear alice against bob: alice gives `aliceOutput` (bob receives all of it) and bob
    /// gives `bobOutput` (alice receives all of it); no bounty in this test book.
    function clear3(
        OrderV4 calldata alice,
        OrderV4 calldata bob,
        ClearConfigV2 calldata clearConfig,
        Float aliceOutput,
        Float bobOutput
    ) external {
        if (alice.owner == bob.owner) revert SameOwner();
        IOV2 calldata aliceIn = alice.validInputs[clearConfig.aliceInputIOIndex];
        IOV2 calldata aliceOut = alice.validOutputs[clearConfig.aliceOutputIOIndex];
        IOV2 calldata bobIn = bob.validInputs[clearConfig.bobInputIOIndex];
        IOV2 calldata bobOut = bob.validOutputs[clearConfig.bobOutputIOIndex];
        if (aliceOut.token != bobIn.token || bobOut.token != aliceIn.token || aliceIn.token == aliceOut.token) {
            revert TokenMismatch();
        }
        if (!orderLive[orderHash(alice)]) {
            emit OrderNotFound(msg.sender, alice.owner, orderHash(alice));
            return;
        }
        if (!orderLive[orderHash(bob)]) {
            emit OrderNotFound(msg.sender, bob.owner, orderHash(bob));
            return;
        }
        emit ClearV3(msg.sender, alice, bob, clearConfig);
        _evaluate(alice);
        _evaluate(bob);
        _debit(alice.owner, aliceOut.token, aliceOut.vaultId, aliceOutput);
        _credit(alice.owner, aliceIn.token, aliceIn.vaultId, bobOutput);
        _debit(bob.owner, bobOut.token, bobOut.vaultId, bobOutput);
        _credit(bob.owner, bobIn.token, bobIn.vaultId, aliceOutput);
        emit AfterClearV2(msg.sender, ClearStateChangeV2(aliceOutput, bobOutput, bobOutput, aliceOutput));
        _settle();
    }

    /// Several calls in one transaction (OpenZeppelin Multicall's shape).
    function multicall(bytes[] calldata data) external returns (bytes[] memory results) {
        results = new bytes[](data.length);
        for (uint256 i = 0; i < data.length; i++) {
            (bool ok, bytes memory result) = address(this).delegatecall(data[i]);
            if (!ok) {
                assembly {
                    revert(add(result, 32), mload(result))
                }
            }
            results[i] = result;
        }
    }

    function _debit(address owner, address token, bytes32 vaultId, Float amount) internal virtual {
        Float balance = vaults[owner][token][vaultId];
        if (balance.lt(amount)) revert InsufficientVault(owner, token, vaultId);
        vaults[owner][token][vaultId] = balance.sub(amount);
    }

    function _credit(address owner, address token, bytes32 vaultId, Float amount) internal virtual {
        vaults[owner][token][vaultId] = vaults[owner][token][vaultId].add(amount);
    }

    /// After a take or a clear: pay what was credited outside the vaults (V6 vaultless).
    function _settle() internal virtual {}

    function _evaluate(OrderV4 calldata order) private {
        bytes calldata code = order.evaluable.bytecode;
        address oracle = order.evaluable.interpreter;
        bytes32[][] memory context = new bytes32[][](1);
        context[0] = new bytes32[](0);
        if (code.length >= 32 && oracle.code.length > 0) {
            bytes32 feed = bytes32(code[0:32]);
            // getPriceNoOlderThan(bytes32,uint256)
            (bool ok, bytes memory price) = oracle.staticcall(abi.encodeWithSelector(0xa4ae35e0, feed, uint256(1 days)));
            if (ok && price.length == 128) {
                context[0] = new bytes32[](5);
                context[0][0] = feed;
                for (uint256 w = 0; w < 4; w++) {
                    bytes32 v;
                    assembly {
                        v := mload(add(price, add(32, mul(w, 32))))
                    }
                    context[0][w + 1] = v;
                }
            }
        }
        emit ContextV2(msg.sender, context);
    }
}
