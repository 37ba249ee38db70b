"""The one exception tree of fedledger.

Every failure a user can cause or meet (a bad spec, a tampered blob, a reverted
transaction, an unreachable node) raises a subclass of `FedledgerError` with a
message that says what is wrong and, where possible, how to fix it. The CLI
prints that message as one line and exits non-zero; anything else escaping is a
bug.

    FedledgerError
    ├── SpecError                 a job spec field is invalid (names the field)
    │   └── CodeError             an organisation's model or client code fails to load, misbehaves,
    │                             or differs from the code the job approved (its digest)
    ├── CodecError                a blob or tensor cannot be encoded or decoded
    │   └── MalformedBlob         bytes that are not a canonical tensor blob
    ├── InvalidUpdate             an update fails validation (shape, dtype, norm)
    ├── StoreError                the blob store failed
    │   ├── BlobNotFound          no blob under that commitment
    │   ├── BlobIntegrityError    the bytes do not match their commitment
    │   ├── BlobSealed            a blob is sealed to readers this party is not (no reader key)
    │   └── ReadRefused           a blob server refused a read: unsigned, stale, or not a reader
    ├── ChainError                the chain failed
    │   ├── ChainUnavailable      the RPC endpoint cannot be reached
    │   └── TransactionReverted   a transaction or call reverted (has `.reason`)
    ├── DatasetError              a dataset cannot be loaded or partitioned
    │   └── DataError             an organisation's own data does not match the job's schema
    ├── PrivacyError              secure aggregation or differential privacy refused an input
    │   ├── KeyMismatch           a public key differs from the on-chain key directory
    │   ├── ShareError            a share is missing, malformed or not for its reader (`.party`)
    │   └── RecoveryFailed        too few shares to unmask a round: nothing is unmasked
    ├── AuditFailure              the audit found a discrepancy
    ├── DashboardError            the dashboard cannot read what it was pointed at
    └── NondeterminismError       two honest computations of one round differ: a bug, not an input
"""

from __future__ import annotations


class FedledgerError(Exception):
    """Base of every error fedledger raises on purpose."""


class SpecError(FedledgerError):
    """A job spec is invalid; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"job spec: {field}: {message}")
        self.field = field


class CodeError(SpecError):
    """The user code a spec names ("package.module:attr") is unusable or is not the approved code.

    `field` is the spec field that names it ("model", "client", "code_digest"). A node
    meets this before it trains, so nothing has been committed.
    """


class CodecError(FedledgerError):
    """A tensor or blob cannot be encoded or decoded."""


class MalformedBlob(CodecError):
    """Bytes are not a canonical tensor blob."""


class InvalidUpdate(FedledgerError):
    """An update fails validation; the message is the rejection reason."""


class UpdateOutOfBounds(InvalidUpdate):
    """An update well formed but larger than the spec's norm bound: about its size, not its form."""


class StoreError(FedledgerError):
    """The blob store failed."""


class BlobNotFound(StoreError):
    """No blob is stored under the commitment."""


class BlobIntegrityError(StoreError):
    """Stored bytes do not match the commitment they are stored under."""


class BlobSealed(StoreError):
    """A blob is sealed to its readers and this party cannot open it (no key, or not one of them)."""


class ReadRefused(StoreError):
    """A blob server refused a read (401: unsigned or bad signature; 403: not a reader)."""


class ChainError(FedledgerError):
    """The chain failed."""


class ChainUnavailable(ChainError):
    """The RPC endpoint cannot be reached."""


class TransactionReverted(ChainError):
    """A transaction or call reverted; `reason` is the contract's revert string."""

    def __init__(self, reason: str, *, function: str = "") -> None:
        where = f"{function}: " if function else ""
        super().__init__(f"{where}reverted: {reason}")
        self.reason = reason
        self.function = function


class BackendError(FedledgerError):
    """A simulation backend cannot run: Ray missing, a cluster unreachable, a bad resource request."""


class DatasetError(FedledgerError):
    """A dataset cannot be loaded or partitioned."""


class DataError(DatasetError):
    """An organisation's own data source is unreadable or does not match the job's schema.

    The message is one line naming the organisation, the source, the column (where one is
    at fault), the problem and how many rows have it; nothing has been committed.
    """


class PrivacyError(FedledgerError):
    """Secure aggregation or differential privacy refused an input."""


class KeyMismatch(PrivacyError):
    """A public key is malformed or differs from the one the chain's key directory holds."""


class ShareError(PrivacyError):
    """A share bundle, share or reveal is missing, malformed, or was not meant for its reader.

    `party` names the participant at fault (the dealer of a bad bundle, the revealer of a bad
    reveal), so the caller can record the fault against it.
    """

    def __init__(self, message: str, *, party: str = "") -> None:
        super().__init__(message)
        self.party = party


class RecoveryFailed(PrivacyError):
    """Too few shares were revealed to remove every mask; the round fails and nothing is unmasked."""


class AuditFailure(FedledgerError):
    """The audit found a discrepancy."""


class NondeterminismError(FedledgerError):
    """Two honest computations of the same round gave different bytes.

    Every rule is a pure integer function of its inputs, so this is never a participant's
    fault: it is a bug in fedledger (or the platform), and no round built on it may stand.
    """


class DashboardError(FedledgerError):
    """`fedledger dashboard` was pointed at something it cannot show (not a run directory, no such job)."""


class ReportError(FedledgerError):
    """A compliance report could not be rendered or written (a missing renderer, an unwritable file)."""
