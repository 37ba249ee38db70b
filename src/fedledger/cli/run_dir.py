"""A simulation's run directory: never two runs in one, and nothing half-written left by a refused job."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from fedledger.errors import SpecError


@dataclass
class RunDir:
    """The run directory being prepared, and how to leave things as they were if the job is refused.

    `created` is the topmost directory this run made (`out` or a parent such as runs/);
    `previous` is the run that --force replaces, set aside until the new one is under way.
    """

    out: Path
    created: Path | None
    previous: Path | None
    accepted: bool = False

    def refuse(self) -> None:
        """Removes everything this run wrote and puts back what it replaced."""
        _close_logs_under(self.out)
        shutil.rmtree(self.out, ignore_errors=True)
        if self.previous is not None:
            self.previous.replace(self.out)
        elif self.created is None:
            self.out.mkdir(exist_ok=True)  # an empty directory the user made stays, empty
        else:
            parent = self.out.parent
            while parent != self.created.parent and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent

    def accept(self) -> None:
        """The job has a finalised round worth keeping: the run it replaces goes."""
        self.accepted = True
        if self.previous is not None:
            shutil.rmtree(self.previous)
            self.previous = None


def prepare_out(out: Path, *, force: bool) -> RunDir:
    """A run directory is evidence: never mix two runs in one, nor lose one to a refused job."""
    previous = None
    if out.exists() and any(out.iterdir()):
        if not force:
            raise SpecError("out", f"run directory {out} is not empty; choose another --out or pass --force")
        out = out.resolve()
        if Path.cwd().is_relative_to(out):
            raise SpecError("out", f"--force would replace {out}, which holds the working directory")
        previous = out.with_name(f".{out.name}.replaced-{os.getpid()}")
        shutil.rmtree(previous, ignore_errors=True)
        out.replace(previous)
    created = None
    for p in [out, *out.parents]:
        if p.exists():
            break
        created = p
    out.mkdir(parents=True, exist_ok=True)
    return RunDir(out=out, created=None if previous is not None else created, previous=previous)


def _close_logs_under(out: Path) -> None:
    """Detaches and closes any run log still open in `out`, as a refusal can leave one."""
    log = logging.getLogger("fedledger")
    for h in list(log.handlers):
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename).is_relative_to(os.path.abspath(out)):
            log.removeHandler(h)
            h.close()
