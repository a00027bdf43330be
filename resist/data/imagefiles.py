"""Class-folder splits of image files: their layout checks, the launcher's cheap look at every file
(its first bytes), and an image loader whose decode errors name the file.

A split is ``<split dir>/<class>/**/<image>``, read as torchvision's ImageFolder reads it: every
sub-directory is a class, and files with one of :data:`IMG_EXTENSIONS` (any case) are its images.
Every error is a one-line :class:`DatasetError` naming the directory or file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS, pil_loader

from resist.data.datasets import DatasetError

__all__ = ["IMG_EXTENSIONS", "Split", "check_files", "check_splits", "from_samples", "load_image", "no_images", "scan"]

# The first bytes of the formats ImageFolder reads (and GIF); WEBP is RIFF....WEBP.
_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
    *(b"P" + str(kind).encode() for kind in range(1, 7)),  # PBM/PGM/PPM
)
_FORMATS = "JPEG, PNG, GIF, BMP, WEBP, TIFF or PPM/PGM"


class Split(NamedTuple):
    """A split directory and its image files by class (a class folder may hold none)."""

    dir: Path
    files: dict[str, list[str]]


def scan(split_dir: Path) -> Split:
    """List ``split_dir``'s classes and image files without opening any (as ImageFolder does)."""
    try:
        classes = sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir())
    except OSError as exc:
        raise DatasetError(
            f"dataset.root: cannot list {split_dir}: {exc.strerror} (fix: check the path and its permissions)"
        ) from exc
    files = {}
    for name in classes:
        found = []
        for folder, _, names in sorted(os.walk(split_dir / name, followlinks=True)):
            found += [os.path.join(folder, f) for f in sorted(names) if f.lower().endswith(IMG_EXTENSIONS)]
        files[name] = found
    return Split(split_dir, files)


def from_samples(split_dir: Path, classes: list[str], samples: list[tuple[str, int]]) -> Split:
    """The :class:`Split` of an ImageFolder's ``classes`` and ``samples`` (no second directory walk)."""
    files: dict[str, list[str]] = {name: [] for name in classes}
    for path, label in samples:
        files[classes[label]].append(path)
    return Split(split_dir, files)


def no_images(split_dir: Path) -> DatasetError:
    return DatasetError(
        f"dataset.root: no images in {split_dir} ({split_dir.resolve()}); expected class folders of images "
        f"{split_dir}/<class>/<image> with an extension {', '.join(IMG_EXTENSIONS)} "
        "(fix: put the split's images in class folders there, or point dataset.root at the right tree)"
    )


def check_splits(splits: list[Split]) -> list[str]:
    """The classes the splits share; raises DatasetError for a split without images, a class folder
    without images, or a class folder that one split has and another lacks."""
    for split in splits:
        if not any(split.files.values()):
            raise no_images(split.dir)
    for split in splits:
        for name, files in split.files.items():
            if not files:
                raise DatasetError(
                    f"dataset.root: class folder {split.dir / name} holds no images "
                    f"({', '.join(IMG_EXTENSIONS)}) (fix: add its images, or remove the folder from every split)"
                )
    missing = [
        (name, split)
        for name in sorted(set().union(*(s.files for s in splits)))
        for split in splits
        if name not in split.files
    ]
    if missing:
        name, split = missing[0]
        holder = next(s for s in splits if name in s.files)
        more = f"; {len(missing) - 1} more class folders are missing from a split" if len(missing) > 1 else ""
        raise DatasetError(
            f"dataset.root: class '{name}' is in {holder.dir} but missing from {split.dir}{more} "
            f"(fix: add {split.dir / name}/ with its images, or remove {holder.dir / name}/)"
        )
    return sorted(splits[0].files)


def check_files(splits: list[Split]) -> None:
    """Read the first bytes of every image file: raises DatasetError naming the first one that is
    empty, unreadable or starts with no known image signature (it does not decode anything)."""
    for split in splits:
        for files in split.files.values():
            for path in files:
                problem = _signature_problem(path)
                if problem:
                    raise DatasetError(
                        f"dataset.root: {path} is not an image: {problem} (fix: remove or replace the file)"
                    )


def _signature_problem(path: str) -> str | None:
    try:
        with open(path, "rb") as file:
            head = file.read(12)
    except OSError as exc:
        return f"cannot read it ({exc.strerror})"
    if not head:
        return "the file is empty"
    if head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return None
    return f"its first bytes ({head[:8].hex(' ')}) are no {_FORMATS} signature"


def load_image(path: str) -> Image.Image:
    """``path`` decoded as an RGB PIL image (torchvision's loader); raises DatasetError naming it."""
    try:
        return pil_loader(path)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = " ".join(re.sub(r" ?<_io\.\w+ name=[^>]*>", "", str(exc)).split()) or type(exc).__name__
        raise DatasetError(
            f"dataset.root: cannot decode image {path}: {reason} (fix: remove or replace the file, then run again)"
        ) from exc
