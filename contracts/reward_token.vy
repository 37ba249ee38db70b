# pragma version ~=0.4.3
"""
@title Minimal ERC-20 reward token
@custom:contract-name reward_token
@license MIT
@notice The token sponsors fund reward pools with and participants stake. Any
        standard ERC-20 works with the coordinator; this one exists so a devnet
        or a simulation has one, with a single minter set at deployment.
"""

from ethereum.ercs import IERC20

implements: IERC20


event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256


event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256


name: public(String[32])
symbol: public(String[8])
decimals: public(constant(uint8)) = 18
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
## @notice The one account allowed to mint.
minter: public(address)


@deploy
def __init__(name_: String[32], symbol_: String[8]):
    """
    @dev The deployer becomes the minter.
    @param name_ Token name.
    @param symbol_ Token symbol.
    """
    self.name = name_
    self.symbol = symbol_
    self.minter = msg.sender


@external
def transfer(receiver: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` from the caller to `receiver`.
    """
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(owner: address, receiver: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` from `owner` to `receiver` against the caller's allowance.
    """
    allowed: uint256 = self.allowance[owner][msg.sender]
    assert allowed >= amount, "reward_token: insufficient allowance"
    if allowed != max_value(uint256):
        self.allowance[owner][msg.sender] = allowed - amount
    self._transfer(owner, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @notice Lets `spender` move up to `amount` of the caller's tokens.
    """
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def mint(receiver: address, amount: uint256):
    """
    @notice Creates `amount` new tokens for `receiver`.
    """
    assert msg.sender == self.minter, "reward_token: caller is not the minter"
    assert receiver != empty(address), "reward_token: mint to zero address"
    self.totalSupply += amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=empty(address), receiver=receiver, value=amount)


@internal
def _transfer(owner: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "reward_token: transfer to zero address"
    balance: uint256 = self.balanceOf[owner]
    assert balance >= amount, "reward_token: insufficient balance"
    self.balanceOf[owner] = balance - amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=owner, receiver=receiver, value=amount)
