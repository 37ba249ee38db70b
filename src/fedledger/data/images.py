"""An organisation's image folder: one subfolder per class, every image resized to the schema's size.

The folder layout is the common one (torchvision's ImageFolder, Keras'
image_dataset_from_directory): `<folder>/<class>/<file>`. Files are read in sorted
order (class folder, then file name), so an organisation's encoded rows, and so its
dataset commitment, do not depend on the file system's listing order. Pixels are
scaled to [0, 1] and nothing is learnt from any party's images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fedledger.data.columns import numeric_sort, quoted, where
from fedledger.data.schema import ImageSchema
from fedledger.data.sources import DataSource
from fedledger.errors import DataError

#: Pillow modes that hold one channel (everything else is read as RGB when inferring)
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def read_images(src: DataSource, schema: ImageSchema, *, organisation: str) -> tuple[np.ndarray, np.ndarray]:
    """(x (N, C, H, W) float32 in [0, 1], y (N,) int64) from a folder with one subfolder per class."""
    at = where(organisation, src.describe())
    folder = _folder(src, at)
    known = {c: i for i, c in enumerate(schema.classes)}
    files: list[tuple[Path, int]] = []
    for sub in _subfolders(folder):
        if sub.name not in known:
            raise DataError(
                f"{at}: subfolder {sub.name!r} is not one of the classes ({quoted(schema.classes)}); "
                "rename or remove it"
            )
        files.extend((f, known[sub.name]) for f in _files(sub))
    if not files:
        raise DataError(f"{at}: no images in the class subfolders ({quoted(schema.classes)}); add some")
    mode = "L" if schema.channels == 1 else "RGB"
    size = (schema.width, schema.height)
    x = np.empty((len(files), schema.channels, schema.height, schema.width), dtype=np.float32)
    for i, (path, _) in enumerate(files):
        pixels = _pixels(path, mode, size, at, folder)  # (H, W) or (H, W, 3) uint8
        x[i] = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    np.divide(x, np.float32(255.0), out=x)
    y = np.array([label for _, label in files], dtype=np.int64)  # (N,)
    return x, y


def infer_image_schema(folder: Path, *, height: int = 0, width: int = 0) -> ImageSchema:
    """Classes from the subfolders (sorted); size and channels from the first image unless given."""
    at = f"image folder ({Path(folder).name})"
    root = _folder(DataSource(str(folder)), at)
    subs = _subfolders(root)
    classes = numeric_sort([s.name for s in subs])
    if len(classes) < 2:
        raise DataError(f"{at}: needs one subfolder per class and at least two classes; found {len(classes)}")
    first = next((f for s in subs for f in _files(s)), None)
    if first is None:
        raise DataError(f"{at}: the class subfolders hold no images; add some")
    try:
        with Image.open(first) as im:
            w, h, mode = im.width, im.height, im.mode
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{at}: image {_rel(first, root)!r} cannot be read: {_reason(e)}") from None
    height, width = height or h, width or w
    if not (4 <= height <= 1024 and 4 <= width <= 1024):
        raise DataError(f"{at}: images are {width}×{height}; give a height and width between 4 and 1024")
    channels = 1 if mode in GREY_MODES else 3
    return ImageSchema(height=height, width=width, channels=channels, classes=tuple(classes))


def _folder(src: DataSource, at: str) -> Path:
    if src.is_url or src.query:
        raise DataError(f"{at}: an image source is a folder, not a database URL or query")
    folder = Path(src.source)
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise DataError(f"{at}: image folder {str(folder)!r} {what}; check the data source path")
    return folder


def _subfolders(folder: Path) -> list[Path]:
    """The class folders, sorted (hidden ones and loose files at the top are not classes)."""
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=_name)


def _files(sub: Path) -> list[Path]:
    return sorted((p for p in sub.iterdir() if p.is_file() and not p.name.startswith(".")), key=_name)


def _name(p: Path) -> str:
    return p.name


def _pixels(path: Path, mode: str, size: tuple[int, int], at: str, root: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()
            img = im.convert(mode)
        if img.size != size:
            img = img.resize(size, Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(
            f"{at}: image {_rel(path, root)!r} cannot be read: {_reason(e)}; remove or replace it"
        ) from None


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _reason(e: BaseException) -> str:
    if isinstance(e, UnidentifiedImageError):
        return "not an image file Pillow can decode"
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
