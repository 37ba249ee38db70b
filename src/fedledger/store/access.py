"""Who may read from (and write to) a blob server: EIP-191-signed requests and the server's lists.

Every commitment is public on chain, so a blob server that answered any GET would hand every
update to anyone who can reach it. With reader lists configured (`store serve --reader/--party`),
a read must carry an EIP-191 signature over
`fedledger-store:READ:<server URL>:<commitment or "list">:<expiry>`, with the expiry a Unix time
at most `MAX_TTL_S` ahead. Binding the server's URL and a short expiry means a captured request
cannot be replayed to another server, nor to this one for long.

- **readers** (the job's committee and auditors) may read every blob;
- **parties** (every registered party of the job) may read plaintext blobs only, i.e. the
  global models; a sealed blob (an individual update) is refused to them;
- anyone else is refused. A refusal is 403 whether or not the blob exists, and the same
  refusal for a blob a party may not read: nothing is revealed about what is stored.

Uploads and deletes are signed the same way, with the method in place of READ
(`fedledger-store:PUT:<server>:<commitment>:<body sha256>:<expiry>`,
`fedledger-store:DELETE:<server>:<commitment>:<expiry>`), so a captured upload or delete
cannot be replayed to another server, nor to this one once expired, and an upload's
signature covers its bytes: a sealed blob, which the server cannot hash-check, cannot be
swapped for other bytes under a captured signature.

Pure logic, no HTTP: `http.py` calls `authenticate` / `ReadAccess.decide` and turns the verdict
into a status.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

SIGNATURE = "X-Fedledger-Signature"
EXPIRY = "X-Fedledger-Expiry"
SERVER = "X-Fedledger-Server"
READ_HEADERS = (SIGNATURE, EXPIRY, SERVER)
MAX_TTL_S = 300  # a signed read is good for at most five minutes
DEFAULT_TTL_S = 60
LIST = "list"


def server_id(url: str) -> str:
    """The form of a server's URL that read requests are bound to: scheme://host:port, lower case."""
    return url.rstrip("/").lower()


def request_message(method: str, server: str, what: str, expiry: int) -> str:
    """What a request's key signs: its method, the server, the object and the expiry."""
    return f"fedledger-store:{method}:{server_id(server)}:{what}:{expiry}"


def read_message(server: str, what: str, expiry: int) -> str:
    return request_message("READ", server, what, expiry)


def upload_target(commitment_hex: str, body: bytes) -> str:
    """What an upload's signature covers: the commitment and the SHA-256 of the bytes put under it."""
    return f"{commitment_hex}:{hashlib.sha256(body).hexdigest()}"


def sign_request(
    account: LocalAccount, method: str, server: str, what: str, *, ttl_s: int = DEFAULT_TTL_S
) -> dict[str, str]:
    """The headers of a `method` (READ, PUT, DELETE) request for `what` to `server`."""
    expiry = int(time.time()) + ttl_s
    signed = account.sign_message(encode_defunct(text=request_message(method, server, what, expiry)))
    return {
        SIGNATURE: "0x" + bytes(signed.signature).hex(),
        EXPIRY: str(expiry),
        SERVER: server_id(server),
    }


def sign_read(account: LocalAccount, server: str, what: str, *, ttl_s: int = DEFAULT_TTL_S) -> dict[str, str]:
    """The headers of a read of `what` (a commitment's 0x hex, or "list") from `server`."""
    return sign_request(account, "READ", server, what, ttl_s=ttl_s)


def authenticate(
    headers: Mapping[str, str], method: str, what: str, names: set[str], now: float | None = None
) -> Verdict:
    """401 with why a request's signature is no good, else 200 with the signer's address.

    `names` are the server's own URLs (`server_id` form): a request must be bound to one.
    """
    signature, expiry_text, server = (headers.get(h) for h in (SIGNATURE, EXPIRY, SERVER))
    if not signature or not expiry_text or not server:
        return Verdict(401, f"unsigned {method.lower()}")
    try:
        expiry = int(expiry_text)
    except ValueError:
        return Verdict(401, "malformed expiry")
    now = time.time() if now is None else now
    if expiry < now:
        return Verdict(401, f"stale signature (expired {int(now - expiry)} s ago)")
    if expiry > now + MAX_TTL_S:
        return Verdict(401, f"signature valid for more than {MAX_TTL_S} s")
    if server_id(server) not in names:
        why = f"signed for another server ({server}; `store serve --public-url` names this one)"
        return Verdict(401, why)
    try:
        signer = Account.recover_message(
            encode_defunct(text=request_message(method, server, what, expiry)), signature=signature
        )
    except Exception:  # any malformed signature is simply not authenticated
        return Verdict(401, "malformed signature")
    return Verdict(200, "signed", str(signer).lower())


@dataclass(frozen=True)
class Verdict:
    """A read's outcome: `status` 200 (serve, or 404 if absent), 401 or 403; `reason` for the log."""

    status: int
    reason: str
    address: str = ""


@dataclass
class ReadAccess:
    """A server's reader lists and the URLs it answers to (what read requests must be bound to)."""

    readers: set[str]
    parties: set[str]
    names: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, readers: Iterable[str], parties: Iterable[str], names: Iterable[str]) -> ReadAccess:
        lower = {r.lower() for r in readers}
        return cls(lower, {p.lower() for p in parties} | lower, {server_id(n) for n in names})

    def authenticate(self, headers: Mapping[str, str], what: str, now: float | None = None) -> Verdict:
        """401 with why a read's signature is no good, else 200 with the signer's address."""
        return authenticate(headers, "READ", what, self.names, now)

    def decide(self, headers: Mapping[str, str], what: str, sealed: bool | None) -> Verdict:
        """The verdict on reading `what`; `sealed` is None when the blob is absent (or a listing).

        A reader gets 200 (the caller answers 404 if absent); a party gets 200 only for a stored
        plaintext blob; every other signed request gets the same 403.
        """
        who = self.authenticate(headers, what)
        if who.status != 200:
            return who
        if who.address in self.readers:
            return Verdict(200, "reader", who.address)
        if who.address in self.parties and what != LIST and sealed is False:
            return Verdict(200, "party", who.address)
        return Verdict(403, "not a reader of this blob", who.address)
