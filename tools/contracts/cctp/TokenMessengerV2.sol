// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import "./TokenMinterV2.sol";

interface IMessageTransmitterV2 {
    function localDomain() external view returns (uint32);
    function sendMessage(
        uint32 destinationDomain,
        bytes32 recipient,
        bytes32 destinationCaller,
        uint32 minFinalityThreshold,
        bytes calldata messageBody
    ) external;
}

/// A stand-in for Circle's TokenMessengerV2 (evm-cctp-contracts 4061786a, the "v2.1" ABI with
/// the minimum fee), without the proxy. depositForBurn's checks and their order, the
/// BurnMessageV2 body, the receive handlers (remote messenger, finality >= 500 on the
/// unfinalized path, expiration against this chain's block number, fee <= maxFee and
/// < amount, fee minted to feeRecipient) and the events are Circle's. Roles (owner, rescuer,
/// denylister, minFeeController) are collapsed onto the deployer.
contract TokenMessengerV2 {
    uint32 private constant TOKEN_MESSENGER_MIN_FINALITY_THRESHOLD = 500;
    uint256 public constant MIN_FEE_MULTIPLIER = 10_000_000;
    uint256 private constant HOOK_DATA_INDEX = 228;

    address public immutable localMessageTransmitter;
    uint32 public immutable messageBodyVersion;

    address public owner;
    address public minFeeController;
    address public feeRecipient;
    TokenMinterV2 public localMinter;
    uint256 public minFee;
    mapping(uint32 => bytes32) public remoteTokenMessengers;
    mapping(address => bool) public denylisted;

    event DepositForBurn(
        address indexed burnToken,
        uint256 amount,
        address indexed depositor,
        bytes32 mintRecipient,
        uint32 destinationDomain,
        bytes32 destinationTokenMessenger,
        bytes32 destinationCaller,
        uint256 maxFee,
        uint32 indexed minFinalityThreshold,
        bytes hookData
    );
    event MintAndWithdraw(
        address indexed mintRecipient, uint256 amount, address indexed mintToken, uint256 feeCollected
    );
    event RemoteTokenMessengerAdded(uint32 domain, bytes32 tokenMessenger);
    event RemoteTokenMessengerRemoved(uint32 domain, bytes32 tokenMessenger);
    event LocalMinterAdded(address localMinter);
    event FeeRecipientSet(address feeRecipient);
    event MinFeeSet(uint256 minFee);
    event Denylisted(address indexed account);
    event UnDenylisted(address indexed account);

    constructor(
        address messageTransmitter_,
        uint32 messageBodyVersion_,
        address tokenMinter_,
        address feeRecipient_,
        uint256 minFee_
    ) {
        require(messageTransmitter_ != address(0), "MessageTransmitter not set");
        require(feeRecipient_ != address(0), "Zero address not allowed");
        require(minFee_ < MIN_FEE_MULTIPLIER, "Min fee too high");
        localMessageTransmitter = messageTransmitter_;
        messageBodyVersion = messageBodyVersion_;
        owner = msg.sender;
        minFeeController = msg.sender;
        feeRecipient = feeRecipient_;
        minFee = minFee_;
        if (tokenMinter_ != address(0)) {
            localMinter = TokenMinterV2(tokenMinter_);
            emit LocalMinterAdded(tokenMinter_);
        }
    }

    modifier onlyOwner() {
        require(msg.sender == owner, "Ownable: caller is not the owner");
        _;
    }

    modifier notDenylistedCallers() {
        require(!denylisted[msg.sender], "Denylistable: account is on denylist");
        require(!denylisted[tx.origin], "Denylistable: account is on denylist");
        _;
    }

    modifier onlyLocalMessageTransmitter() {
        require(msg.sender == localMessageTransmitter, "Invalid message transmitter");
        _;
    }

    modifier onlyRemoteTokenMessenger(uint32 domain, bytes32 tokenMessenger) {
        require(
            remoteTokenMessengers[domain] != bytes32(0) && remoteTokenMessengers[domain] == tokenMessenger,
            "Remote TokenMessenger unsupported"
        );
        _;
    }

    // -- burn --------------------------------------------------------------------------

    function depositForBurn(
        uint256 amount,
        uint32 destinationDomain,
        bytes32 mintRecipient,
        address burnToken,
        bytes32 destinationCaller,
        uint256 maxFee,
        uint32 minFinalityThreshold
    ) external notDenylistedCallers {
        _depositForBurn(
            amount, destinationDomain, mintRecipient, burnToken, destinationCaller, maxFee,
            minFinalityThreshold, ""
        );
    }

    function depositForBurnWithHook(
        uint256 amount,
        uint32 destinationDomain,
        bytes32 mintRecipient,
        address burnToken,
        bytes32 destinationCaller,
        uint256 maxFee,
        uint32 minFinalityThreshold,
        bytes calldata hookData
    ) external notDenylistedCallers {
        require(hookData.length > 0, "Hook data is empty");
        _depositForBurn(
            amount, destinationDomain, mintRecipient, burnToken, destinationCaller, maxFee,
            minFinalityThreshold, hookData
        );
    }

    function getMinFeeAmount(uint256 amount) public view returns (uint256) {
        if (minFee == 0) return 0;
        require(amount > 1, "Amount too low");
        return _calculateMinFeeAmount(amount);
    }

    function _calculateMinFeeAmount(uint256 amount) private view returns (uint256) {
        uint256 fee = (amount * minFee) / MIN_FEE_MULTIPLIER;
        return fee == 0 ? 1 : fee;
    }

    function _depositForBurn(
        uint256 amount,
        uint32 destinationDomain,
        bytes32 mintRecipient,
        address burnToken,
        bytes32 destinationCaller,
        uint256 maxFee,
        uint32 minFinalityThreshold,
        bytes memory hookData
    ) private {
        require(amount > 0, "Amount must be nonzero");
        require(mintRecipient != bytes32(0), "Mint recipient must be nonzero");
        require(maxFee < amount, "Max fee must be less than amount");
        if (minFee > 0) {
            require(maxFee >= _calculateMinFeeAmount(amount), "Insufficient max fee");
        }
        bytes32 destinationTokenMessenger = remoteTokenMessengers[destinationDomain];
        require(destinationTokenMessenger != bytes32(0), "No TokenMessenger for domain");

        TokenMinterV2 minter = localMinter;
        require(address(minter) != address(0), "Local minter is not set");
        require(
            IMintBurnToken(burnToken).transferFrom(msg.sender, address(minter), amount),
            "Transfer operation failed"
        );
        minter.burn(burnToken, amount);

        bytes memory burnMessage = abi.encodePacked(
            messageBodyVersion,
            bytes32(uint256(uint160(burnToken))),
            mintRecipient,
            amount,
            bytes32(uint256(uint160(msg.sender))),
            maxFee,
            uint256(0), // feeExecuted: set by the attester
            uint256(0), // expirationBlock: set by the attester
            hookData
        );
        IMessageTransmitterV2(localMessageTransmitter).sendMessage(
            destinationDomain, destinationTokenMessenger, destinationCaller, minFinalityThreshold,
            burnMessage
        );
        emit DepositForBurn(
            burnToken, amount, msg.sender, mintRecipient, destinationDomain,
            destinationTokenMessenger, destinationCaller, maxFee, minFinalityThreshold, hookData
        );
    }

    // -- receive -----------------------------------------------------------------------

    function handleReceiveFinalizedMessage(
        uint32 remoteDomain,
        bytes32 sender,
        uint32, /* finalityThresholdExecuted */
        bytes calldata messageBody
    )
        external
        onlyLocalMessageTransmitter
        onlyRemoteTokenMessenger(remoteDomain, sender)
        returns (bool)
    {
        _handleReceiveMessage(messageBody, remoteDomain);
        return true;
    }

    function handleReceiveUnfinalizedMessage(
        uint32 remoteDomain,
        bytes32 sender,
        uint32 finalityThresholdExecuted,
        bytes calldata messageBody
    )
        external
        onlyLocalMessageTransmitter
        onlyRemoteTokenMessenger(remoteDomain, sender)
        returns (bool)
    {
        require(
            finalityThresholdExecuted >= TOKEN_MESSENGER_MIN_FINALITY_THRESHOLD,
            "Unsupported finality threshold"
        );
        _handleReceiveMessage(messageBody, remoteDomain);
        return true;
    }

    function _handleReceiveMessage(bytes calldata body, uint32 remoteDomain) private {
        require(body.length >= HOOK_DATA_INDEX, "Invalid burn message: too short");
        require(uint32(bytes4(body[0:4])) == messageBodyVersion, "Invalid message body version");
        bytes32 burnToken = bytes32(body[4:36]);
        address mintRecipient = address(uint160(uint256(bytes32(body[36:68]))));
        uint256 amount = uint256(bytes32(body[68:100]));
        uint256 maxFee = uint256(bytes32(body[132:164]));
        uint256 fee = uint256(bytes32(body[164:196]));
        uint256 expirationBlock = uint256(bytes32(body[196:228]));
        require(
            expirationBlock == 0 || expirationBlock > block.number,
            "Message expired and must be re-signed"
        );
        require(fee == 0 || fee < amount, "Fee equals or exceeds amount");
        require(fee <= maxFee, "Fee exceeds max fee");

        address mintToken;
        if (fee > 0) {
            mintToken = localMinter.mint(
                remoteDomain, burnToken, mintRecipient, feeRecipient, amount - fee, fee
            );
        } else {
            mintToken = localMinter.mint(remoteDomain, burnToken, mintRecipient, amount);
        }
        emit MintAndWithdraw(mintRecipient, amount - fee, mintToken, fee);
    }

    // -- admin -------------------------------------------------------------------------

    function addRemoteTokenMessenger(uint32 domain, bytes32 tokenMessenger) external onlyOwner {
        require(tokenMessenger != bytes32(0), "bytes32(0) not allowed");
        require(remoteTokenMessengers[domain] == bytes32(0), "TokenMessenger already set");
        remoteTokenMessengers[domain] = tokenMessenger;
        emit RemoteTokenMessengerAdded(domain, tokenMessenger);
    }

    function removeRemoteTokenMessenger(uint32 domain) external onlyOwner {
        bytes32 tokenMessenger = remoteTokenMessengers[domain];
        require(tokenMessenger != bytes32(0), "No TokenMessenger set");
        delete remoteTokenMessengers[domain];
        emit RemoteTokenMessengerRemoved(domain, tokenMessenger);
    }

    function addLocalMinter(address newLocalMinter) external onlyOwner {
        require(newLocalMinter != address(0), "Zero address not allowed");
        require(address(localMinter) == address(0), "Local minter is already set.");
        localMinter = TokenMinterV2(newLocalMinter);
        emit LocalMinterAdded(newLocalMinter);
    }

    function setFeeRecipient(address newFeeRecipient) external onlyOwner {
        require(newFeeRecipient != address(0), "Zero address not allowed");
        feeRecipient = newFeeRecipient;
        emit FeeRecipientSet(newFeeRecipient);
    }

    function setMinFee(uint256 newMinFee) external {
        require(msg.sender == minFeeController, "Caller is not the min fee controller");
        require(newMinFee < MIN_FEE_MULTIPLIER, "Min fee too high");
        minFee = newMinFee;
        emit MinFeeSet(newMinFee);
    }

    function denylist(address account) external onlyOwner {
        denylisted[account] = true;
        emit Denylisted(account);
    }

    function unDenylist(address account) external onlyOwner {
        denylisted[account] = false;
        emit UnDenylisted(account);
    }
}
