"""A directory of blobs, one `<64 hex>.safetensors` file each.

Files are named by commitment so any safetensors tool can open them and a plain `ls` is the
index. Writes go to a temporary file in the same directory and are moved into place with
`os.replace`, so a reader (or a crash) never sees half a blob. There is no fsync: a power
loss can lose a recent blob, which `get` then reports as missing, never as wrong bytes.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fedledger.errors import StoreError
from fedledger.store.base import BlobStore

SUFFIX = ".safetensors"
_NAME = re.compile(r"^([0-9a-f]{64})\.safetensors$")


class LocalStore(BlobStore):
    """Blobs under `root/<commitment hex>.safetensors`; `root` is created if missing."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create blob directory {self.root}: {exc.strerror}") from None

    def path_for(self, commitment: bytes) -> Path:
        """Where the blob for `commitment` lives (exists or not)."""
        return self.root / f"{commitment.hex()}{SUFFIX}"

    def _read(self, commitment: bytes) -> bytes | None:
        try:
            return self.path_for(commitment).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self.path_for(commitment)}: {exc.strerror}") from None

    def _contains(self, commitment: bytes) -> bool:
        return self.path_for(commitment).is_file()

    def _write(self, commitment: bytes, data: bytes) -> None:
        target = self.path_for(commitment)
        tmp_name = ""
        try:
            with tempfile.NamedTemporaryFile(
                dir=self.root, prefix=".tmp-", suffix=SUFFIX, delete=False
            ) as tmp:
                tmp_name = tmp.name
                tmp.write(data)
            os.replace(tmp_name, target)
        except OSError as exc:
            if tmp_name:
                Path(tmp_name).unlink(missing_ok=True)
            raise StoreError(f"cannot write {target}: {exc.strerror}") from None

    def _remove(self, commitment: bytes) -> bool:
        try:
            self.path_for(commitment).unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreError(f"cannot delete {self.path_for(commitment)}: {exc.strerror}") from None
        return True

    def _list(self) -> Iterator[bytes]:
        try:
            names = os.listdir(self.root)
        except OSError as exc:
            raise StoreError(f"cannot list {self.root}: {exc.strerror}") from None
        for name in names:
            match = _NAME.match(name)
            if match:
                yield bytes.fromhex(match.group(1))
