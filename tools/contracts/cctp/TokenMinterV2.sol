// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

interface IMintBurnToken {
    function mint(address to, uint256 amount) external returns (bool);
    function burn(uint256 amount) external;
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// A stand-in for Circle's TokenMinterV2: burns what the local TokenMessenger deposited,
/// mints the token linked to (remote domain, remote token), with per-message burn limits.
/// The owner is also the token controller.
contract TokenMinterV2 {
    address public owner;
    address public tokenController;
    address public localTokenMessenger;
    bool public paused;
    mapping(address => uint256) public burnLimitsPerMessage;
    /// keccak256(abi.encodePacked(remoteDomain, remoteToken)) => local token
    mapping(bytes32 => address) public remoteTokensToLocalTokens;

    event LocalTokenMessengerAdded(address localTokenMessenger);
    event TokenPairLinked(address localToken, uint32 remoteDomain, bytes32 remoteToken);
    event TokenPairUnlinked(address localToken, uint32 remoteDomain, bytes32 remoteToken);
    event SetBurnLimitPerMessage(address indexed token, uint256 burnLimitPerMessage);

    constructor(address tokenController_) {
        owner = msg.sender;
        tokenController = tokenController_;
    }

    modifier onlyOwner() {
        require(msg.sender == owner, "Ownable: caller is not the owner");
        _;
    }

    modifier onlyTokenController() {
        require(msg.sender == tokenController, "Caller is not tokenController");
        _;
    }

    modifier onlyLocalTokenMessenger() {
        require(msg.sender == localTokenMessenger && msg.sender != address(0), "Caller not local TokenMessenger");
        _;
    }

    modifier whenNotPaused() {
        require(!paused, "Pausable: paused");
        _;
    }

    function addLocalTokenMessenger(address newLocalTokenMessenger) external onlyOwner {
        require(newLocalTokenMessenger != address(0), "Invalid TokenMessenger address");
        require(localTokenMessenger == address(0), "Local TokenMessenger already set");
        localTokenMessenger = newLocalTokenMessenger;
        emit LocalTokenMessengerAdded(newLocalTokenMessenger);
    }

    function linkTokenPair(address localToken, uint32 remoteDomain, bytes32 remoteToken)
        external
        onlyTokenController
    {
        bytes32 key = keccak256(abi.encodePacked(remoteDomain, remoteToken));
        require(remoteTokensToLocalTokens[key] == address(0), "Unable to link token pair");
        remoteTokensToLocalTokens[key] = localToken;
        emit TokenPairLinked(localToken, remoteDomain, remoteToken);
    }

    function unlinkTokenPair(address localToken, uint32 remoteDomain, bytes32 remoteToken)
        external
        onlyTokenController
    {
        bytes32 key = keccak256(abi.encodePacked(remoteDomain, remoteToken));
        require(remoteTokensToLocalTokens[key] != address(0), "Unable to unlink token pair");
        delete remoteTokensToLocalTokens[key];
        emit TokenPairUnlinked(localToken, remoteDomain, remoteToken);
    }

    function setMaxBurnAmountPerMessage(address localToken, uint256 burnLimitPerMessage)
        external
        onlyTokenController
    {
        burnLimitsPerMessage[localToken] = burnLimitPerMessage;
        emit SetBurnLimitPerMessage(localToken, burnLimitPerMessage);
    }

    function getLocalToken(uint32 remoteDomain, bytes32 remoteToken) public view returns (address) {
        return remoteTokensToLocalTokens[keccak256(abi.encodePacked(remoteDomain, remoteToken))];
    }

    function burn(address burnToken, uint256 burnAmount)
        external
        whenNotPaused
        onlyLocalTokenMessenger
    {
        uint256 allowed = burnLimitsPerMessage[burnToken];
        require(allowed > 0, "Burn token not supported");
        require(burnAmount <= allowed, "Burn amount exceeds per tx limit");
        IMintBurnToken(burnToken).burn(burnAmount);
    }

    /// Mints once (no fee).
    function mint(uint32 sourceDomain, bytes32 burnToken, address to, uint256 amount)
        external
        whenNotPaused
        onlyLocalTokenMessenger
        returns (address mintToken)
    {
        mintToken = _mintToken(sourceDomain, burnToken);
        require(IMintBurnToken(mintToken).mint(to, amount), "Mint operation failed");
    }

    /// Mints the net amount to the recipient, then the fee to the fee recipient.
    function mint(
        uint32 sourceDomain,
        bytes32 burnToken,
        address recipientOne,
        address recipientTwo,
        uint256 amountOne,
        uint256 amountTwo
    ) external whenNotPaused onlyLocalTokenMessenger returns (address mintToken) {
        mintToken = _mintToken(sourceDomain, burnToken);
        require(IMintBurnToken(mintToken).mint(recipientOne, amountOne), "Mint operation failed");
        require(IMintBurnToken(mintToken).mint(recipientTwo, amountTwo), "Mint operation failed");
    }

    function _mintToken(uint32 sourceDomain, bytes32 burnToken) private view returns (address token) {
        token = getLocalToken(sourceDomain, burnToken);
        require(token != address(0), "Mint token not supported");
    }

    function pause() external onlyOwner {
        paused = true;
    }

    function unpause() external onlyOwner {
        paused = false;
    }
}
