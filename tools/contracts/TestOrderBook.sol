// SPDX-License-Identifier: MIT
pragma solidity ^0.8.25;

import {Float, LibTestFloat} from "./LibTestFloat.sol";
import {IERC20Like, TaskV2, TestOrderBookBase} from "./TestOrderBookBase.sol";

/// The IOrderBookV5 test orderbook: vault deposits and withdrawals are `deposit3`/`withdraw3`.
contract TestOrderBook is TestOrderBookBase {
    using LibTestFloat for Float;

    function deposit3(address token, bytes32 vaultId, Float amount, TaskV2[] calldata) external {
        if (!amount.isPositive()) revert ZeroDepositAmount(msg.sender, token, vaultId);
        uint256 units = amount.toFixed(IERC20Like(token).decimals(), true);
        require(IERC20Like(token).transferFrom(msg.sender, address(this), units), "transferFrom");
        emit DepositV2(msg.sender, token, vaultId, units);
        vaults[msg.sender][token][vaultId] = vaults[msg.sender][token][vaultId].add(amount);
    }

    function withdraw3(address token, bytes32 vaultId, Float target, TaskV2[] calldata) external {
        Float balance = vaults[msg.sender][token][vaultId];
        Float amount = target.lt(balance) ? target : balance;
        vaults[msg.sender][token][vaultId] = balance.sub(amount);
        uint256 units = amount.toFixed(IERC20Like(token).decimals(), false);
        emit WithdrawV2(msg.sender, token, vaultId, target, amount, units);
        if (units > 0) require(IERC20Like(token).transfer(msg.sender, units), "transfer");
    }
}
