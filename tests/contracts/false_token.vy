# pragma version ~=0.4.3
"""
@title Test double: an ERC-20 whose transfers return false on demand
@notice Moves nothing; `transfer`/`transferFrom` return `not fail`, `approve`
        `not approve_fails`. Lets the tests reach the coordinator's and
        optimistic.vy's "... transfer failed" / "approve failed" reverts, which a
        reverting token (like reward_token) never triggers.
"""

fail: public(bool)


@external
def set_fail(fail_: bool):
    self.fail = fail_


@external
def transfer(receiver: address, amount: uint256) -> bool:
    return not self.fail


@external
def transferFrom(owner: address, receiver: address, amount: uint256) -> bool:
    return not self.fail


approve_fails: public(bool)


@external
def set_approve_fails(fails: bool):
    self.approve_fails = fails


@external
def approve(spender: address, amount: uint256) -> bool:
    return not self.approve_fails
