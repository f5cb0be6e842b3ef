// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// The recipient side of a message (TokenMessengerV2), as Circle's IMessageHandlerV2.
interface IMessageHandlerV2 {
    function handleReceiveFinalizedMessage(
        uint32 sourceDomain,
        bytes32 sender,
        uint32 finalityThresholdExecuted,
        bytes calldata messageBody
    ) external returns (bool);

    function handleReceiveUnfinalizedMessage(
        uint32 sourceDomain,
        bytes32 sender,
        uint32 finalityThresholdExecuted,
        bytes calldata messageBody
    ) external returns (bool);
}

/// A stand-in for Circle's MessageTransmitterV2 (evm-cctp-contracts 4061786a), without the proxy.
///
/// The message layout, the attestation check (raw-digest ECDSA over keccak256(message),
/// r||s||v with v 27/28 and low s, exactly `signatureThreshold` signatures in strictly ascending
/// signer order), the order of the receive checks and their revert strings, nonce 0
/// pre-claimed and the events are Circle's. Roles are collapsed onto the deployer (owner =
/// pauser = attester manager); the constructor does what `initialize` does.
contract MessageTransmitterV2 {
    uint256 private constant SIGNATURE_LENGTH = 65;
    uint256 private constant MESSAGE_BODY_INDEX = 148;
    uint32 private constant FINALITY_THRESHOLD_FINALIZED = 2000;
    uint256 private constant NONCE_USED = 1;
    uint256 private constant HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    uint32 public immutable localDomain;
    uint32 public immutable version;

    address public owner;
    address public attesterManager;
    bool public paused;
    uint256 public maxMessageBodySize;
    uint256 public signatureThreshold;
    mapping(address => bool) private enabledAttester;
    address[] private enabledAttesters;
    mapping(bytes32 => uint256) public usedNonces;

    event MessageSent(bytes message);
    event MessageReceived(
        address indexed caller,
        uint32 sourceDomain,
        bytes32 indexed nonce,
        bytes32 sender,
        uint32 indexed finalityThresholdExecuted,
        bytes messageBody
    );
    event AttesterEnabled(address indexed attester);
    event AttesterDisabled(address indexed attester);
    event SignatureThresholdUpdated(uint256 oldSignatureThreshold, uint256 newSignatureThreshold);
    event Pause();
    event Unpause();

    constructor(
        uint32 localDomain_,
        uint32 version_,
        address[] memory attesters,
        uint256 signatureThreshold_,
        uint256 maxMessageBodySize_
    ) {
        require(signatureThreshold_ > 0, "Invalid signature threshold");
        require(signatureThreshold_ <= attesters.length, "Signature threshold exceeds attesters");
        require(maxMessageBodySize_ > 0, "MaxMessageBodySize is zero");
        localDomain = localDomain_;
        version = version_;
        owner = msg.sender;
        attesterManager = msg.sender;
        maxMessageBodySize = maxMessageBodySize_;
        for (uint256 i = 0; i < attesters.length; i++) {
            _enableAttester(attesters[i]);
        }
        signatureThreshold = signatureThreshold_;
        // Nonce 0 is what the source writes; pre-claiming it means raw MessageSent bytes
        // (never attested) can never be received.
        usedNonces[bytes32(0)] = NONCE_USED;
    }

    modifier onlyOwner() {
        require(msg.sender == owner, "Ownable: caller is not the owner");
        _;
    }

    modifier onlyAttesterManager() {
        require(msg.sender == attesterManager, "Caller not attester manager");
        _;
    }

    modifier whenNotPaused() {
        require(!paused, "Pausable: paused");
        _;
    }

    // -- sending -----------------------------------------------------------------------

    function sendMessage(
        uint32 destinationDomain,
        bytes32 recipient,
        bytes32 destinationCaller,
        uint32 minFinalityThreshold,
        bytes calldata messageBody
    ) external whenNotPaused {
        require(destinationDomain != localDomain, "Domain is local");
        require(messageBody.length <= maxMessageBodySize, "Message body exceeds max size");
        require(recipient != bytes32(0), "Recipient must be nonzero");
        bytes memory message = abi.encodePacked(
            version,
            localDomain,
            destinationDomain,
            bytes32(0), // nonce: assigned by the attester
            bytes32(uint256(uint160(msg.sender))),
            recipient,
            destinationCaller,
            minFinalityThreshold,
            uint32(0), // finalityThresholdExecuted: set by the attester
            messageBody
        );
        emit MessageSent(message);
    }

    // -- receiving ---------------------------------------------------------------------

    function receiveMessage(bytes calldata message, bytes calldata attestation)
        external
        whenNotPaused
        returns (bool success)
    {
        _verifyAttestationSignatures(message, attestation);
        require(message.length >= MESSAGE_BODY_INDEX, "Invalid message: too short");
        require(uint32(bytes4(message[8:12])) == localDomain, "Invalid destination domain");
        bytes32 destinationCaller = bytes32(message[108:140]);
        require(
            destinationCaller == bytes32(0)
                || destinationCaller == bytes32(uint256(uint160(msg.sender))),
            "Invalid caller for message"
        );
        require(uint32(bytes4(message[0:4])) == version, "Invalid message version");
        bytes32 nonce = bytes32(message[12:44]);
        require(usedNonces[nonce] == 0, "Nonce already used");
        usedNonces[nonce] = NONCE_USED;

        uint32 sourceDomain = uint32(bytes4(message[4:8]));
        bytes32 sender = bytes32(message[44:76]);
        address recipient = address(uint160(uint256(bytes32(message[76:108]))));
        uint32 finalityThresholdExecuted = uint32(bytes4(message[144:148]));
        bytes calldata messageBody = message[MESSAGE_BODY_INDEX:];
        if (finalityThresholdExecuted < FINALITY_THRESHOLD_FINALIZED) {
            require(
                IMessageHandlerV2(recipient).handleReceiveUnfinalizedMessage(
                    sourceDomain, sender, finalityThresholdExecuted, messageBody
                ),
                "handleReceiveUnfinalizedMessage() failed"
            );
        } else {
            require(
                IMessageHandlerV2(recipient).handleReceiveFinalizedMessage(
                    sourceDomain, sender, finalityThresholdExecuted, messageBody
                ),
                "handleReceiveFinalizedMessage() failed"
            );
        }
        emit MessageReceived(
            msg.sender, sourceDomain, nonce, sender, finalityThresholdExecuted, messageBody
        );
        return true;
    }

    function _verifyAttestationSignatures(bytes calldata message, bytes calldata attestation)
        private
        view
    {
        require(
            attestation.length == SIGNATURE_LENGTH * signatureThreshold, "Invalid attestation length"
        );
        address latest = address(0);
        bytes32 digest = keccak256(message);
        for (uint256 i = 0; i < signatureThreshold; i++) {
            bytes calldata signature = attestation[i * SIGNATURE_LENGTH:(i + 1) * SIGNATURE_LENGTH];
            address signer = _recover(digest, signature);
            require(signer > latest, "Invalid signature order or dupe");
            require(enabledAttester[signer], "Invalid signature: not attester");
            latest = signer;
        }
    }

    /// OpenZeppelin 3.4 ECDSA.recover: r||s||v, v in {27, 28}, s in the lower half order.
    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address) {
        require(signature.length == 65, "ECDSA: invalid signature length");
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        require(uint256(s) <= HALF_ORDER, "ECDSA: invalid signature 's' value");
        require(v == 27 || v == 28, "ECDSA: invalid signature 'v' value");
        address signer = ecrecover(digest, v, r, s);
        require(signer != address(0), "ECDSA: invalid signature");
        return signer;
    }

    // -- attesters and admin -----------------------------------------------------------

    function isEnabledAttester(address attester) public view returns (bool) {
        return enabledAttester[attester];
    }

    function getNumEnabledAttesters() public view returns (uint256) {
        return enabledAttesters.length;
    }

    function getEnabledAttester(uint256 index) external view returns (address) {
        return enabledAttesters[index];
    }

    function enableAttester(address attester) external onlyAttesterManager {
        _enableAttester(attester);
    }

    function disableAttester(address attester) external onlyAttesterManager {
        uint256 count = enabledAttesters.length;
        require(count > 1, "Unable to disable attester");
        require(count > signatureThreshold, "Signature threshold is too low");
        require(enabledAttester[attester], "Attester already disabled");
        enabledAttester[attester] = false;
        for (uint256 i = 0; i < count; i++) {
            if (enabledAttesters[i] == attester) {
                enabledAttesters[i] = enabledAttesters[count - 1];
                enabledAttesters.pop();
                break;
            }
        }
        emit AttesterDisabled(attester);
    }

    function setSignatureThreshold(uint256 newThreshold) external onlyAttesterManager {
        require(newThreshold > 0, "Invalid signature threshold");
        require(newThreshold <= enabledAttesters.length, "New signature threshold too high");
        require(newThreshold != signatureThreshold, "Signature threshold already set");
        emit SignatureThresholdUpdated(signatureThreshold, newThreshold);
        signatureThreshold = newThreshold;
    }

    function updateAttesterManager(address newAttesterManager) external onlyOwner {
        require(newAttesterManager != address(0), "Invalid attester manager address");
        attesterManager = newAttesterManager;
    }

    function setMaxMessageBodySize(uint256 newMaxMessageBodySize) external onlyOwner {
        maxMessageBodySize = newMaxMessageBodySize;
    }

    function pause() external onlyOwner {
        paused = true;
        emit Pause();
    }

    function unpause() external onlyOwner {
        paused = false;
        emit Unpause();
    }

    function _enableAttester(address attester) private {
        require(attester != address(0), "New attester must be nonzero");
        require(!enabledAttester[attester], "Attester already enabled");
        enabledAttester[attester] = true;
        enabledAttesters.push(attester);
        emit AttesterEnabled(attester);
    }
}
