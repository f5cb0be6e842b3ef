// SPDX-License-Identifier: MIT
pragma solidity ^0.8.25;

/// The rain Float: one bytes32 = int224 coefficient (low bits) and int32 exponent (top bits).
type Float is bytes32;

/// Just enough Float arithmetic for a test orderbook: exact add/sub/compare by aligning
/// exponents, and conversion to/from ERC-20 base units. Checked math: overflow reverts.
library LibTestFloat {
    error FloatOverflow();

    function unpack(Float f) internal pure returns (int256 c, int256 e) {
        uint256 v = uint256(Float.unwrap(f));
        c = int256(int224(uint224(v)));
        e = int256(int32(uint32(v >> 224)));
    }

    function pack(int256 c, int256 e) internal pure returns (Float) {
        while (c > type(int224).max || c < type(int224).min) {
            // Only reached by products of huge coefficients; drop a trailing digit.
            c /= 10;
            e += 1;
        }
        if (e > type(int32).max || e < type(int32).min) revert FloatOverflow();
        uint256 v = (uint256(uint224(int224(c)))) | (uint256(uint32(int32(e))) << 224);
        return Float.wrap(bytes32(v));
    }

    function fromFixed(uint256 amount, uint8 decimals) internal pure returns (Float) {
        return pack(int256(amount), -int256(uint256(decimals)));
    }

    function _align(Float a, Float b) private pure returns (int256 ca, int256 cb, int256 e) {
        (int256 c1, int256 e1) = unpack(a);
        (int256 c2, int256 e2) = unpack(b);
        if (c1 == 0) e1 = e2;
        if (c2 == 0) e2 = e1;
        e = e1 < e2 ? e1 : e2;
        ca = c1 * int256(10 ** uint256(e1 - e));
        cb = c2 * int256(10 ** uint256(e2 - e));
    }

    function add(Float a, Float b) internal pure returns (Float) {
        (int256 ca, int256 cb, int256 e) = _align(a, b);
        return pack(ca + cb, e);
    }

    function sub(Float a, Float b) internal pure returns (Float) {
        (int256 ca, int256 cb, int256 e) = _align(a, b);
        return pack(ca - cb, e);
    }

    function lt(Float a, Float b) internal pure returns (bool) {
        (int256 ca, int256 cb,) = _align(a, b);
        return ca < cb;
    }

    function isPositive(Float a) internal pure returns (bool) {
        (int256 c,) = unpack(a);
        return c > 0;
    }

    /// Base units of a non-negative Float; rounds up (pulls) or truncates (pushes).
    function toFixed(Float a, uint8 decimals, bool roundUp) internal pure returns (uint256) {
        (int256 c, int256 e) = unpack(a);
        require(c >= 0, "negative amount");
        int256 shift = e + int256(uint256(decimals));
        if (shift >= 0) return uint256(c) * 10 ** uint256(shift);
        uint256 div = 10 ** uint256(-shift);
        uint256 q = uint256(c) / div;
        if (roundUp && q * div != uint256(c)) q += 1;
        return q;
    }
}
