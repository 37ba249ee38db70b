"""Signing keys for organisations' processes: development keys or encrypted keystores."""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account import Account
from eth_account.signers.local import LocalAccount

from fedledger.chain.base import dev_accounts
from fedledger.errors import SpecError
from fedledger.store.sealed import public_read_key, read_key

PASSPHRASE_ENV = "FEDLEDGER_PASSPHRASE"


def load_key(spec: str) -> LocalAccount:
    """`dev:N` (development key N) or a path to an encrypted Ethereum keystore file.

    The keystore's passphrase comes from $FEDLEDGER_PASSPHRASE, else a prompt.
    """
    if spec.startswith("dev:"):
        try:
            return dev_accounts(int(spec[4:]) + 1)[-1]
        except ValueError:
            raise SpecError("key", f"{spec!r}: dev keys are dev:0, dev:1, …") from None
    path = Path(spec)
    try:
        keystore = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SpecError("key", f"cannot read keystore {path}: {exc}") from None
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if passphrase is None:
        try:
            if not sys.stdin or not sys.stdin.isatty():
                raise EOFError
            passphrase = getpass.getpass(f"passphrase for {path}: ")
        except (EOFError, OSError):
            raise SpecError(
                "key", f"keystore {path} is locked and there is no terminal to ask: set ${PASSPHRASE_ENV}"
            ) from None
    try:
        account: LocalAccount = Account.from_key(Account.decrypt(keystore, passphrase))
        return account
    except ValueError:
        raise SpecError(
            "key", f"keystore {path} did not unlock: wrong passphrase (set ${PASSPHRASE_ENV})"
        ) from None


def reader_entry(account: LocalAccount) -> dict[str, str]:
    """This key's entry in a job spec's `readers`: its address and X25519 read key (derived)."""
    return {"address": account.address, "key": "0x" + public_read_key(bytes(account.key)).hex()}


def reader_secret(account: LocalAccount) -> X25519PrivateKey:
    """The X25519 key that opens blobs sealed to this account (never leaves its process)."""
    return read_key(bytes(account.key))
