"""An organisation's own code, named by "package.module:attr", and the digest that approves it.

A job that runs user code (a model factory, a Flower client) names it by reference in the
spec; every organisation imports it from its own installation. The spec also carries a
digest of that code, so an organisation whose copy differs (an older release, a local
patch, a different fork) finds out before it trains, instead of committing updates from a
model the others do not run.

Digest rule (`code_digest`), the same on every machine:

1. Each ref "a.b.c:attr" names module "a.b.c"; what is hashed is the whole top-level
   package "a" that contains it, because the module imports its siblings freely. When
   "a" is a package directory, that is every ``*.py`` file under it, recursively (files
   inside ``__pycache__`` or in hidden directories are skipped), each named by its posix
   path relative to the directory holding "a" ("a/__init__.py", "a/b/c.py"). When "a" is
   a single-file module, it is that one file, named by its file name ("a.py").
2. The files of all refs are merged (a package named by two refs counts once) and sorted
   by that relative name.
3. digest = "0x" + hex(keccak256(concatenation over the files, in order, of
   name as UTF-8 || 0x00 || len(bytes) as 8-byte big-endian || bytes)).

Names are relative and only source bytes are read, so two organisations with the package
installed in different directories get the same digest, and compiled ``__pycache__`` files
(which differ between Python versions) do not count. Data files, compiled extensions and
third-party dependencies (torch, flwr) are not covered: they are the environment, pinned
the usual way (a lock file), not the job's code.

Built-in model names ("cnn", "mlp", "logreg") and refs are both accepted; built-ins add
nothing, and refs naming nothing but built-ins digest to "" (no user code: the built-in
model is covered by fedledger's own version). Refs into fedledger itself are refused:
fedledger is the same code for every party by its version, and hashing its whole source
tree would change the digest with every fedledger release and every editable checkout,
so organisations on compatible releases could never agree; name the built-in model instead.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path

from eth_utils.crypto import keccak

from fedledger.errors import CodeError

#: model names fedledger builds itself (training/models.py); they are not user code
BUILTIN_MODELS: tuple[str, ...] = ("cnn", "mlp", "logreg")
OWN_PACKAGE = "fedledger"


def split_ref(ref: str, *, field: str = "code") -> tuple[str, str]:
    """ "package.module:attr" -> ("package.module", "attr"); a one-line error on any other form."""
    module, sep, attr = ref.partition(":")
    parts = module.split(".")
    if (
        not sep
        or not all(p.isidentifier() for p in parts)
        or not all(a.isidentifier() for a in attr.split("."))
    ):
        raise CodeError(field, f"{ref!r} is not a reference of the form 'package.module:attr'")
    return module, attr


def load_ref(ref: str, *, field: str = "code") -> object:
    """Imports the module of "package.module:attr" and returns the attribute (dotted attrs allowed).

    The module must be importable as it stands (installed, e.g. `pip install -e .` of the
    user's app, or on PYTHONPATH): fedledger does not add directories to `sys.path`.
    """
    module_name, attr = split_ref(ref, field=field)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise CodeError(
                field,
                f"{ref}: module {missing!r} is not importable; install the package that provides "
                "it (pip install -e <your app>) or put its directory on PYTHONPATH",
            ) from None
        raise CodeError(
            field,
            f"{ref}: importing {module_name} failed: it needs module {missing!r}, which is not installed",
        ) from None
    except Exception as exc:  # the user's module raised at import time: say what, not where
        raise CodeError(field, f"{ref}: importing {module_name} raised {describe_error(exc)}") from None
    obj: object = module
    for i, part in enumerate(attr.split(".")):
        if not hasattr(obj, part):
            where = module_name if i == 0 else f"{module_name}:{'.'.join(attr.split('.')[:i])}"
            raise CodeError(field, f"{ref}: {where} has no attribute {part!r}")
        obj = getattr(obj, part)
    return obj


#: the most characters of an exception's message an error line quotes
DESCRIBE_MAX = 400


def describe_error(exc: BaseException) -> str:
    """`ValueError: bad input` on one line: every line of the message, joined.

    A multi-line message keeps its useful part on later lines (PyTorch's "Error(s) in loading
    state_dict for Net:" is followed by the mismatched sizes), so the lines are joined with
    "; " and the whole is cut at DESCRIBE_MAX characters.
    """
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0] + (" " + "; ".join(lines[1:]) if len(lines) > 1 else "")
    if len(text) > DESCRIBE_MAX:
        text = text[: DESCRIBE_MAX - 1] + "…"
    return f"{type(exc).__name__}: {text}"


def is_builtin(ref: str) -> bool:
    return ref in BUILTIN_MODELS


def _package_files(ref: str) -> tuple[str, dict[str, Path]]:
    """(top-level package name, {relative posix name: file}) for the package holding ref's module."""
    module_name, _ = split_ref(ref, field="code_digest")
    top = module_name.split(".")[0]
    if top == OWN_PACKAGE:
        raise CodeError(
            "code_digest",
            f"{ref} is inside fedledger, whose code every party already shares by version; "
            "name a built-in model (cnn, mlp, logreg) or move the code into your own package",
        )
    try:
        spec = importlib.util.find_spec(module_name)
        top_spec = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise CodeError(
            "code_digest", f"{ref}: cannot locate module {module_name}: {describe_error(exc)}"
        ) from None
    except Exception as exc:  # a parent package's __init__ raised
        raise CodeError("code_digest", f"{ref}: importing {top} raised {describe_error(exc)}") from None
    if spec is None or top_spec is None:
        raise CodeError(
            "code_digest", f"{ref}: module {module_name!r} is not importable, so its code cannot be digested"
        )
    locations = list(top_spec.submodule_search_locations or [])
    if locations:
        if len(locations) != 1:
            raise CodeError(
                "code_digest",
                f"{ref}: {top} is a namespace package spread over {len(locations)} directories; "
                "give it an __init__.py so its code has one home",
            )
        root = Path(locations[0])
        files = {
            path.relative_to(root.parent).as_posix(): path
            for path in root.rglob("*.py")
            if path.is_file()
            and not any(p == "__pycache__" or p.startswith(".") for p in path.relative_to(root).parts[:-1])
        }
        return top, files
    origin = top_spec.origin
    if origin is None or not origin.endswith(".py"):
        raise CodeError(
            "code_digest",
            f"{ref}: {top} is not Python source ({origin or 'built in'}), so its code cannot be digested",
        )
    path = Path(origin)
    return top, {path.name: path}


def code_files(refs: Sequence[str]) -> dict[str, Path]:
    """Every source file the digest covers, by relative name, sorted; built-ins contribute none."""
    files: dict[str, Path] = {}
    for ref in refs:
        if ref and not is_builtin(ref):
            files.update(_package_files(ref)[1])
    return dict(sorted(files.items()))


def digest_files(files: dict[str, Path]) -> str:
    """keccak256 over (name || 0x00 || u64 big-endian length || bytes) per file, in the given order."""
    if not files:
        return ""
    chunks = []
    for name, path in files.items():
        data = path.read_bytes()
        chunks += [name.encode("utf-8"), b"\x00", len(data).to_bytes(8, "big"), data]
    return "0x" + bytes(keccak(b"".join(chunks))).hex()


def code_digest(refs: Sequence[str]) -> str:
    """ "0x" + keccak256 hex over the source of every package the refs name; "" for built-ins only."""
    return digest_files(code_files(refs))


def packages(refs: Sequence[str]) -> list[str]:
    """The top-level packages the digest of `refs` covers, sorted (for messages)."""
    return sorted({split_ref(r)[0].split(".")[0] for r in refs if r and not is_builtin(r)})


def check_code_digest(refs: Sequence[str], expected: str, *, organisation: str) -> None:
    """Refuses to go on when this organisation's copy of the job's code is not the approved one."""
    actual = code_digest(refs)
    if actual == expected:
        return
    covered = ", ".join(packages(refs)) or "no user code"
    if not expected:
        raise CodeError(
            "code_digest",
            f"{organisation}: the job names user code ({covered}) but approves no digest; "
            f'set code_digest = "{actual}" in the spec to approve this code',
        )
    if not actual:
        raise CodeError(
            "code_digest",
            f"{organisation}: the job approves code digest {expected} but names no user code; "
            "remove code_digest from the spec or name the model/client it approves",
        )
    named = ", ".join(r for r in refs if r and not is_builtin(r))
    raise CodeError(
        "code_digest",
        f"{organisation}: code of {covered} has digest {actual} here but the job approved {expected}; "
        f"install the job's version of {covered} (refs: {named})",
    )
