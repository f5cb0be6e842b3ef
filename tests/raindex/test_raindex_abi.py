"""Topic hashes and selectors derived from the packaged ABI data match the published ones."""

from st0x_liquidity.raindex import abi

PUBLISHED_TOPICS = {
    "TakeOrderV3": "194f1feb3b4d7076a2c272e774e792e0c48bb8c7aa1a9a3671c1cd6da9e6b4c1",
    "ClearV3": "6fa7f4c28634b0a9d6831401c45ae468195fb63aed07308935c35374ff5d9e39",
    "AfterClearV2": "d9fa84dd790c969daa5c33d8050dc06b4a9b59d5b42e2be5f5e8ae20447f618d",
    "DepositV2": "7f9dfa19cf1cc2f806f2f860fbc9c056b601fb1afc0e9b843dfe5c63616268e6",
    "WithdrawV2": "8045c25080b0868951141ed0a91720bcad09a8364a2b3109ee1fd49c1f0bc8b8",
    "AddOrderV3": "87491344dfbcf91f6cbbc610cbbeedc85313d37a02df0c93527f7ea5f8db717f",
    "RemoveOrderV3": "09d18501db0080ca2d6cd7c17fa7255daff4b2d503ea93b76ff68b6752ea8e63",
}

ORDER = "(address,(address,address,bytes),(address,bytes32)[],(address,bytes32)[],bytes32)"


def test_topic_hashes_match_published() -> None:
    for name, expected in PUBLISHED_TOPICS.items():
        assert abi.topic0(name).hex() == expected, name


def test_canonical_signatures() -> None:
    assert abi.event_signature("TakeOrderV3") == (
        f"TakeOrderV3(address,({ORDER},uint256,uint256,(address,bytes32[],bytes)[]),bytes32,bytes32)"
    )
    assert abi.event_signature("ClearV3") == (
        f"ClearV3(address,{ORDER},{ORDER},(uint256,uint256,uint256,uint256,bytes32,bytes32))"
    )
    assert (
        abi.event_signature("AfterClearV2")
        == "AfterClearV2(address,(bytes32,bytes32,bytes32,bytes32))"
    )


def test_selectors() -> None:
    assert abi.function_selector("IOrderBookV5", "vaultBalance2").hex() == "41d1514f"
    assert abi.function_selector("IPyth", "getPriceUnsafe").hex() == "96834ad3"
    assert abi.function_selector("IPyth", "getPriceNoOlderThan").hex() == "a4ae35e0"
    assert abi.function_selector("IPyth", "getEmaPriceUnsafe").hex() == "9474f45b"
    assert abi.function_selector("IPyth", "getEmaPriceNoOlderThan").hex() == "711a2e28"
    assert abi.function_selector("IERC20Metadata", "symbol").hex() == "95d89b41"
    assert abi.function_selector("IERC20Metadata", "decimals").hex() == "313ce567"


def test_vault_function_selectors_of_both_interfaces() -> None:
    """onchain.md §1.3 and §11: V5 deposit3/withdraw3, V6 deposit4/withdraw4."""
    assert abi.function_selector("IOrderBookV5", "deposit3").hex() == "7921a962"
    assert abi.function_selector("IOrderBookV5", "withdraw3").hex() == "0cb49ba3"
    assert abi.function_selector("IRaindexV6", "deposit4").hex() == "2fbc4ba0"
    assert abi.function_selector("IRaindexV6", "withdraw4").hex() == "60746119"
    assert abi.function_selector("IRaindexV6", "vaultBalance2").hex() == "41d1514f"
    for interface, (deposit, withdraw) in abi.VAULT_FUNCTIONS.items():
        source = abi.ORDERBOOK_INTERFACES[interface]
        abi.function_selector(source, deposit)
        abi.function_selector(source, withdraw)


def test_error_table_is_the_real_interfaces() -> None:
    """The published error selectors (onchain.md §1.3) and V6's additions (§11)."""
    by_name = {name: (sel.hex(), types) for sel, (name, types) in abi.orderbook_errors().items()}
    assert by_name["SameOwner"] == ("2a63c7cc", ())
    assert by_name["TokenMismatch"] == ("936bb5ad", ())
    assert by_name["ZeroDepositAmount"][0] == "6dde9c30"
    assert by_name["ZeroWithdrawTargetAmount"][0] == "00e8e934"
    assert by_name["ZeroVaultId"][1] == ("address", "address")
    assert {"ZeroMaximumIO", "NoOrders", "OrderNoSources"} <= set(by_name)
    # errors of the project's test contracts are not the real orderbook's
    assert "InsufficientVault" not in by_name and "NotOrderOwner" not in by_name
