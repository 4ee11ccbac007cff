"""Image folders as datasets: ``root/<class name>/<image files>``, read with Pillow.

    >>> raw = load_image_folder("/data/flowers", image_size=32)     # doctest: +SKIP
    >>> raw.classes, raw.x_train.shape                                # doctest: +SKIP
    (('daisy', 'rose', 'tulip'), (1600, 32, 32, 3))

``load_dataset("folder:/data/flowers", image_size=32)`` does the same and then makes the
usual validation split. Pillow is a dependency of matplotlib, so it is normally there;
it is imported only when a folder is read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gridrun.data import FOLDER_PREFIX
from gridrun.data._dataset import DataError, RawData
from gridrun.data._split import stratified_split

__all__ = ["load_image_folder", "FOLDER_TEST_FRACTION", "FOLDER_TEST_SEED", "MIN_IMAGE_SIZE"]

# An image folder has no official test split: this fixed, stratified fraction of all its
# images is held out as the test set, with a fixed seed independent of split_seed (as for
# digits), so test accuracy is comparable across every run on the same folder.
FOLDER_TEST_FRACTION, FOLDER_TEST_SEED = 0.2, 0
MIN_IMAGE_SIZE = 8


def load_image_folder(root: str | os.PathLike, image_size: int = 32, *,
                      channels: int | None = None) -> RawData:
    """The images under ``root`` as a RawData named ``"folder:<root>"``.

    Layout: one subfolder of ``root`` per class; class names are the sorted subfolder
    names (label k is the k-th name). Names starting with "." (hidden files and folders)
    are ignored, and so are plain files directly in ``root``. A class's images are the
    files under its folder, subfolders included, whose extension is one Pillow can open
    (.png, .jpg, .jpeg, .bmp, .gif, .tif, .webp, ...; case-insensitive), in sorted path
    order; files with other extensions (notes, Thumbs.db, ...) are ignored.

    Each image is turned upright by its EXIF orientation, converted to RGB (an alpha
    channel is dropped, 16-bit and float images are clipped to 0..255 by Pillow),
    center-cropped to a square (side = its shorter side) and resized to ``image_size`` x
    ``image_size`` with Pillow's BILINEAR filter. The set is stored as uint8 (N, H, W, C),
    like every other dataset: C = 3 if any image has colour (a pixel whose R, G, B differ),
    else C = 1 (grayscale, the exact gray values). ``channels`` forces 1 (ITU-R 601-2 luma,
    Pillow's "L") or 3 (gray replicated).

    ``FOLDER_TEST_FRACTION`` (0.2) of the images, stratified by class with the fixed seed
    ``FOLDER_TEST_SEED``, form the test set; the rest is the training set.

    A file with an image extension that Pillow cannot decode is an error naming it, not
    skipped: dropping it silently would change the class counts and the test split
    without anyone noticing, and a corrupt file usually means an incomplete copy. Every
    error is a one-line DataError: ``root`` missing, fewer than 2 class folders, a class
    without image files, an unreadable image, ``image_size`` below 8, Pillow missing.
    """
    if (isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer))
            or image_size < MIN_IMAGE_SIZE):
        raise DataError(f"image_size={image_size!r} must be an integer >= {MIN_IMAGE_SIZE}")
    if channels not in (None, 1, 3) or isinstance(channels, bool):
        raise DataError(f"channels={channels!r} must be None (decide from the images), 1 or 3")
    image_size = int(image_size)
    Image, ImageOps = _pillow()
    folder = Path(root).expanduser()
    if not folder.exists():
        raise DataError(f"image folder {folder} not found: give a directory with one "
                        f"subfolder of images per class")
    if not folder.is_dir():
        raise DataError(f"image folder {folder} is not a directory: give a directory with "
                        f"one subfolder of images per class")
    classes = sorted(p.name for p in folder.iterdir()
                     if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        found = f" ({classes[0]!r})" if classes else ""
        raise DataError(f"image folder {folder} has {len(classes)} class folder{found}; a "
                        f"dataset needs at least 2 subfolders, one per class, holding its images")

    extensions = _extensions(Image)
    resample = getattr(Image, "Resampling", Image).BILINEAR
    images, labels = [], []
    for label, name in enumerate(classes):
        files = _image_files(folder / name, extensions)
        if not files:
            raise DataError(f"{folder / name}: class {name!r} has no image file "
                            f"(.png, .jpg, ... that Pillow reads); add its images or "
                            f"remove the folder")
        for path in files:
            images.append(_read(path, image_size, Image, ImageOps, resample))
            labels.append(label)

    x = np.stack(images)
    colour = bool(np.any(x[..., 0] != x[..., 1]) or np.any(x[..., 1] != x[..., 2]))
    if channels == 1 or (channels is None and not colour):
        if colour:  # forced gray: Pillow's luma, as convert("L") would give
            x = np.stack([np.asarray(Image.fromarray(im, "RGB").convert("L")) for im in x])
        else:
            x = np.ascontiguousarray(x[..., 0])
        x = x[..., np.newaxis]
    y = np.asarray(labels, dtype=np.int64)
    train, test = stratified_split(y, FOLDER_TEST_FRACTION, FOLDER_TEST_SEED)
    return RawData(f"{FOLDER_PREFIX}{root}", x[train], y[train], x[test], y[test],
                   tuple(classes))


def _pillow():
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise DataError("reading an image folder needs Pillow: pip install pillow") from None
    return Image, ImageOps


def _extensions(Image) -> frozenset[str]:
    """Lower-case extensions of every format Pillow can open (not the save-only ones)."""
    Image.init()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items()
                     if fmt in Image.OPEN)


def _image_files(class_dir: Path, extensions: frozenset[str]) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(class_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in filenames
                     if not f.startswith(".") and Path(f).suffix.lower() in extensions)
    return sorted(found)


def _read(path: Path, size: int, Image, ImageOps, resample) -> np.ndarray:
    """One file as a uint8 (size, size, 3) array; DataError naming the file if unreadable."""
    try:
        with Image.open(path) as opened:
            opened.load()
            img = ImageOps.exif_transpose(opened).convert("RGB")
    except Exception as err:  # Pillow raises many types (OSError, SyntaxError, ...)
        reason = " ".join(str(err).split()) or type(err).__name__
        raise DataError(f"{path}: cannot read this image ({reason}); fix or remove the "
                        f"file") from err
    width, height = img.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((size, size), resample)
    return np.asarray(img, dtype=np.uint8)
