// SPDX-License-Identifier: MIT
pragma solidity ^0.8.25;

import {Float, LibTestFloat} from "./LibTestFloat.sol";
import {IERC20Like, TaskV2, TestOrderBookBase} from "./TestOrderBookBase.sol";

/// The IRaindexV6 test orderbook: the same events as V5, vault moves are `deposit4`/`withdraw4`
/// (which refuse vault id 0 with `ZeroVaultId`), and an order IO with vault id 0 is
/// *vaultless*: what the order gives is pulled from the owner's wallet, what it receives is
/// paid to the owner's wallet (after the takers have paid, at the end of the take or clear).
/// Base units are truncated both ways, so the book keeps any dust.
contract TestRaindexV6 is TestOrderBookBase {
    using LibTestFloat for Float;

    error ZeroVaultId(address sender, address token);
    error ZeroWithdrawTargetAmount(address sender, address token, bytes32 vaultId);

    struct Owed {
        address owner;
        address token;
        uint256 units;
    }

    Owed[] private owed;

    function deposit4(address token, bytes32 vaultId, Float amount, TaskV2[] calldata) external {
        if (vaultId == bytes32(0)) revert ZeroVaultId(msg.sender, token);
        if (!amount.isPositive()) revert ZeroDepositAmount(msg.sender, token, vaultId);
        uint256 units = amount.toFixed(IERC20Like(token).decimals(), true);
        require(IERC20Like(token).transferFrom(msg.sender, address(this), units), "transferFrom");
        emit DepositV2(msg.sender, token, vaultId, units);
        vaults[msg.sender][token][vaultId] = vaults[msg.sender][token][vaultId].add(amount);
    }

    function withdraw4(address token, bytes32 vaultId, Float target, TaskV2[] calldata) external {
        if (vaultId == bytes32(0)) revert ZeroVaultId(msg.sender, token);
        if (!target.isPositive()) revert ZeroWithdrawTargetAmount(msg.sender, token, vaultId);
        Float balance = vaults[msg.sender][token][vaultId];
        Float amount = target.lt(balance) ? target : balance;
        vaults[msg.sender][token][vaultId] = balance.sub(amount);
        uint256 units = amount.toFixed(IERC20Like(token).decimals(), false);
        emit WithdrawV2(msg.sender, token, vaultId, target, amount, units);
        if (units > 0) require(IERC20Like(token).transfer(msg.sender, units), "transfer");
    }

    function _debit(address owner, address token, bytes32 vaultId, Float amount) internal override {
        if (vaultId != bytes32(0)) return super._debit(owner, token, vaultId, amount);
        uint256 units = amount.toFixed(IERC20Like(token).decimals(), false);
        if (units > 0) require(IERC20Like(token).transferFrom(owner, address(this), units), "vaultless output");
    }

    function _credit(address owner, address token, bytes32 vaultId, Float amount) internal override {
        if (vaultId != bytes32(0)) return super._credit(owner, token, vaultId, amount);
        owed.push(Owed(owner, token, amount.toFixed(IERC20Like(token).decimals(), false)));
    }

    function _settle() internal override {
        for (uint256 i = 0; i < owed.length; i++) {
            Owed memory o = owed[i];
            if (o.units > 0) require(IERC20Like(o.token).transfer(o.owner, o.units), "vaultless input");
        }
        delete owed;
    }
}
