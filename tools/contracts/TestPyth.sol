// SPDX-License-Identifier: MIT
pragma solidity ^0.8.25;

/// PythStructs.Price, exactly: a static tuple, 4 words of return data.
struct Price {
    int64 price;
    uint64 conf;
    int32 expo;
    uint256 publishTime;
}

/// A Pyth-like oracle with the real IPyth read functions (same selectors, same return
/// layout) and a setter in place of signed price updates.
contract TestPyth {
    error StalePrice();
    error PriceFeedNotFound();

    mapping(bytes32 => Price) private prices;

    function setPrice(bytes32 id, int64 price, uint64 conf, int32 expo, uint256 publishTime) external {
        prices[id] = Price(price, conf, expo, publishTime);
    }

    function getPriceUnsafe(bytes32 id) public view returns (Price memory) {
        Price memory p = prices[id];
        if (p.publishTime == 0) revert PriceFeedNotFound();
        return p;
    }

    function getPriceNoOlderThan(bytes32 id, uint256 age) external view returns (Price memory) {
        Price memory p = getPriceUnsafe(id);
        if (block.timestamp > p.publishTime && block.timestamp - p.publishTime > age) revert StalePrice();
        return p;
    }

    function getEmaPriceUnsafe(bytes32 id) external view returns (Price memory) {
        return getPriceUnsafe(id);
    }
}
