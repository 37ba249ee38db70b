"""Users' own model factories ("package.module:build") and the digest that approves their code.

Each test writes a small package into its own temporary directory under a fresh name, so
nothing imported by one test is seen by another.
"""

from __future__ import annotations

import importlib
import itertools
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fedledger.errors import CodeError, SpecError
from fedledger.training.code import check_code_digest, code_digest, code_files, load_ref
from fedledger.training.models import build_model
from fedledger.training.torch_client import get_weights

_names = itertools.count()

FACTORY = """
from torch import nn

def build(*, input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], 16), nn.ReLU(), nn.Linear(16, num_classes))
"""


def write_package(root: Path, name: str, files: dict[str, str]) -> Path:
    """Writes package `name` (a directory with the given relative files) under `root`."""
    for rel, text in files.items():
        path = root / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / name


def fresh_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], sub: str = "a"
) -> str:
    """An importable package with a unique name; returns the name."""
    name = f"user_pkg_{next(_names)}"
    write_package(tmp_path / sub, name, {"__init__.py": "", **files})
    monkeypatch.syspath_prepend(str(tmp_path / sub))
    importlib.invalidate_caches()
    return name


def forget(name: str) -> None:
    """Drops package `name` and its submodules from sys.modules (to import another copy)."""
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]
    importlib.invalidate_caches()


# -- model factories -------------------------------------------------------------------


def test_user_factory_builds_identical_weights_from_the_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = fresh_package(tmp_path, monkeypatch, {"model.py": FACTORY})
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = build_model(f"{pkg}.model:build", (64,), 10, seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG is untouched
    b = build_model(f"{pkg}.model:build", (64,), 10, seed=7)
    c = build_model(f"{pkg}.model:build", (64,), 10, seed=8)
    wa, wb, wc = get_weights(a), get_weights(b), get_weights(c)
    assert [w.shape for w in wa] == [(16, 64), (16,), (10, 16), (10,)]
    assert all((x == y).all() for x, y in zip(wa, wb, strict=True))
    assert not all((x == y).all() for x, y in zip(wa, wc, strict=True))
    assert a(torch.zeros(3, 64)).shape == (3, 10)


def test_builtin_models_still_build() -> None:
    assert build_model("mlp", (30,), 2, seed=0)(torch.zeros(3, 30)).shape == (3, 2)
    with pytest.raises(SpecError, match=r"unknown model 'resnet'.*package.module:build"):
        build_model("resnet", (1, 28, 28), 10, seed=0)


@pytest.mark.parametrize(
    ("source", "ref_attr", "message"),
    [
        (None, "nowhere.model:build", r"module 'nowhere' is not importable; install"),
        (FACTORY, "model:make", r"has no attribute 'make'"),
        ("build = 3\n", "model:build", r"is a int, not a callable factory"),
        ("def build(**kw):\n    return 'a model'\n", "model:build", r"returned a str, not a torch nn.Module"),
        (
            "def build(**kw):\n    raise RuntimeError('CUDA not available\\nmore')\n",
            "model:build",
            r"build\(input_shape=\(64,\), num_classes=10\) raised RuntimeError: CUDA not available more$",
        ),
        (
            "def build(input_shape, classes):\n    pass\n",
            "model:build",
            r"raised TypeError: .*unexpected keyword argument 'num_classes'",
        ),
        (
            "from torch import nn\ndef build(**kw):\n    return nn.ReLU()\n",
            "model:build",
            r"returned a ReLU with no parameters",
        ),
        (
            "from torch import nn\ndef build(*, input_shape, num_classes):\n    return nn.Linear(64, 3)\n",
            "model:build",
            r"gives output shape \(2, 3\), expected \(2, 10\)",
        ),
        (
            "from torch import nn\ndef build(*, input_shape, num_classes):\n    return nn.Linear(5, 10)\n",
            "model:build",
            r"a batch of shape \(2, 64\) fails in forward: RuntimeError",
        ),
        ("import numpy as np\nraise ImportError('no GPU build')\n", "model:build", r"raised ImportError"),
    ],
)
def test_factory_errors_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str | None, ref_attr: str, message: str
) -> None:
    pkg = fresh_package(tmp_path, monkeypatch, {} if source is None else {"model.py": source})
    ref = ref_attr if ref_attr.startswith("nowhere") else f"{pkg}.{ref_attr}"
    with pytest.raises(CodeError, match=message) as info:
        build_model(ref, (64,), 10, seed=0)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("job spec: model: ")
    assert info.value.field == "model"


def test_load_ref_rejects_malformed_refs() -> None:
    for bad in ("no_colon", "a-b:c", "a.b:", ":attr"):
        with pytest.raises(CodeError, match="not a reference of the form"):
            load_ref(bad)
    assert load_ref("math:pi") == pytest.approx(3.14159, abs=1e-5)
    assert load_ref("os.path:join.__name__") == "join"


# -- code digest -----------------------------------------------------------------------

APP = {"model.py": FACTORY, "client_app.py": "X = 1\n", "sub/__init__.py": "", "sub/util.py": "Y = 2\n"}


def test_same_package_in_two_directories_has_one_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "user_pkg_twice"
    for sub in ("org_a", "org_b/deeper/site-packages"):
        write_package(tmp_path / sub, name, {"__init__.py": "", **APP})
    digests = []
    for sub in ("org_a", "org_b/deeper/site-packages"):
        forget(name)
        with monkeypatch.context() as m:
            m.syspath_prepend(str(tmp_path / sub))
            importlib.invalidate_caches()
            assert str(load_ref(f"{name}.model:build").__code__.co_filename).startswith(str(tmp_path / sub))
            digests.append(code_digest([f"{name}.model:build", f"{name}.client_app:X"]))
    forget(name)
    assert digests[0] == digests[1]
    assert digests[0].startswith("0x") and len(digests[0]) == 66


def test_digest_covers_every_source_file_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = fresh_package(tmp_path, monkeypatch, APP)
    refs = [f"{pkg}.model:build"]
    files = code_files(refs)
    assert list(files) == sorted(
        f"{pkg}/{rel}"
        for rel in ["__init__.py", "client_app.py", "model.py", "sub/__init__.py", "sub/util.py"]
    )
    before = code_digest(refs)
    # compiled files (written on import unless PYTHONDONTWRITEBYTECODE) are not source
    cache = tmp_path / "a" / pkg / "sub" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "util.cpython-311.pyc").write_bytes(b"\x00compiled")
    (cache / "stray.py").write_text("Z = 3\n")
    (tmp_path / "a" / pkg / ".hidden").mkdir()
    (tmp_path / "a" / pkg / ".hidden" / "x.py").write_text("Z = 4\n")
    (tmp_path / "a" / pkg / "weights.bin").write_bytes(b"\x00\x01")
    assert code_digest(refs) == before
    # the ref's own module, a sibling the factory never imports: all of the package is the code
    assert code_digest([f"{pkg}.client_app:X"]) == before

    util = tmp_path / "a" / pkg / "sub" / "util.py"
    util.write_bytes(b"Y = 3\n")  # one byte changed
    changed = code_digest(refs)
    assert changed != before
    util.write_bytes(b"Y = 2\n")
    assert code_digest(refs) == before
    (tmp_path / "a" / pkg / "sub" / "extra.py").write_text("")  # a new (even empty) file
    assert code_digest(refs) not in (before, changed)


def test_digest_of_a_single_file_module_and_of_builtins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "user_single_mod.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert list(code_files(["user_single_mod:build"])) == ["user_single_mod.py"]
    single = code_digest(["user_single_mod:build"])
    assert single.startswith("0x") and code_digest(["cnn", "user_single_mod:build", ""]) == single
    assert code_digest([]) == code_digest(["cnn"]) == code_digest(["mlp", ""]) == ""


def test_refs_into_fedledger_are_refused() -> None:
    with pytest.raises(CodeError, match=r"inside fedledger.*name a built-in model"):
        code_digest(["fedledger.training.models:build_model"])


def test_check_code_digest_names_both_digests_and_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = fresh_package(tmp_path, monkeypatch, APP)
    refs = ["cnn", f"{pkg}.client_app:X"]
    good = code_digest(refs)
    check_code_digest(refs, good, organisation="org-2")  # no error
    check_code_digest(["cnn"], "", organisation="org-2")
    wrong = "0x" + "ab" * 32
    with pytest.raises(CodeError) as info:
        check_code_digest(refs, wrong, organisation="org-2")
    line = str(info.value)
    assert "\n" not in line and line.startswith("job spec: code_digest: org-2: ")
    assert good in line and wrong in line and pkg in line
    with pytest.raises(CodeError, match=f'approves no digest; set code_digest = "{good}"'):
        check_code_digest(refs, "", organisation="org-2")
    with pytest.raises(CodeError, match="names no user code"):
        check_code_digest(["cnn"], wrong, organisation="org-2")


def test_a_multi_line_error_keeps_its_later_lines_on_one_line() -> None:
    from fedledger.training.code import DESCRIBE_MAX, describe_error

    exc = RuntimeError(
        "Error(s) in loading state_dict for Net:\n\tsize mismatch for fc.weight: copying a param with "
        "shape torch.Size([10, 64]) from checkpoint, the shape in current model is torch.Size([2, 64])."
    )
    line = describe_error(exc)
    assert "\n" not in line
    head = "RuntimeError: Error(s) in loading state_dict for Net: size mismatch for fc.weight:"
    assert line.startswith(head)
    long = describe_error(ValueError("x" * 5000))
    assert len(long) <= len("ValueError: ") + DESCRIBE_MAX and long.endswith("…")
