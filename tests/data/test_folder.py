"""The ImageFolder reader (dataset=imagefolder / imagenet) on tiny generated trees: evaluation split
naming, augmentation policies, seeded augmentation, and one-line errors for bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from resist.config import AugmentPolicy, DatasetConfig, DatasetName
from resist.data import sources
from resist.data.sources import DatasetError, check_available
from tests.conftest import write_image_folder
from tests.helpers import one_line_error


def _cfg(root: Path, **overrides) -> DatasetConfig:
    return DatasetConfig(**{"name": DatasetName.imagefolder, "root": str(root), "image_size": 12, **overrides})


def test_reads_train_and_val(tiny_imagefolder):
    check_available(_cfg(tiny_imagefolder))
    data = sources.load(_cfg(tiny_imagefolder), seed=0)
    assert (len(data.train), len(data.test), data.num_classes, data.in_channels) == (12, 12, 3, 3)
    assert "evaluation split: val/" in data.description and "12 train / 12 val" in data.description
    assert "augment crop_flip" in data.description  # auto, at 12 px
    image, label = data.train[(5, 0)]
    assert image.shape == (3, 12, 12) and image.dtype == torch.float32 and label == 1
    assert sorted(data.test[i][1] for i in range(12)) == [0] * 4 + [1] * 4 + [2] * 4
    assert data.test[0][0].shape == (3, 12, 12)


def test_test_split_when_there_is_no_val(tiny_imagefolder):
    (tiny_imagefolder / "val").rename(tiny_imagefolder / "test")
    check_available(_cfg(tiny_imagefolder))
    data = sources.load(_cfg(tiny_imagefolder), seed=0)
    assert "evaluation split: test/" in data.description and "12 train / 12 test" in data.description


def test_val_is_preferred_over_test(tiny_imagefolder):
    write_image_folder(tiny_imagefolder, {"test": 1}, ["a", "b", "c"])
    data = sources.load(_cfg(tiny_imagefolder), seed=0)
    assert "evaluation split: val/" in data.description and len(data.test) == 12


def test_neither_val_nor_test_names_both(tiny_imagefolder):
    shutil.rmtree(tiny_imagefolder / "val")
    for cfg in (_cfg(tiny_imagefolder), DatasetConfig(name=DatasetName.imagenet, root=str(tiny_imagefolder))):
        message = one_line_error(check_available, cfg)
        assert f"'{tiny_imagefolder / 'val'}'" in message and f"'{tiny_imagefolder / 'test'}'" in message


def test_missing_train_split(tmp_path):
    message = one_line_error(check_available, _cfg(tmp_path / "nowhere"))
    assert f"'{tmp_path / 'nowhere' / 'train'}'" in message and "is not a directory" in message


@pytest.mark.parametrize("policy", list(AugmentPolicy))
def test_every_policy_gives_images_of_the_size(tiny_imagefolder, policy):
    data = sources.load(_cfg(tiny_imagefolder, augment=policy), seed=0)
    images = [data.train[(i, seed)][0] for i in (0, 11) for seed in range(4)]
    assert all(image.shape == (3, 12, 12) for image in images)
    assert all(torch.isfinite(image).all() for image in images)
    if policy == AugmentPolicy.none:  # no randomness: the evaluation transform, whatever the seed
        assert all(torch.equal(data.train[(0, seed)][0], images[0]) for seed in range(4))


def test_large_images_resolve_auto_to_resized_crop(tiny_imagefolder):
    data = sources.load(_cfg(tiny_imagefolder, image_size=96), seed=0)
    assert "augment resized_crop_flip" in data.description and data.train[(0, 3)][0].shape == (3, 96, 96)


@pytest.mark.parametrize("policy", [AugmentPolicy.crop_flip, AugmentPolicy.resized_crop_flip])
def test_seeded_augmentation_is_a_function_of_index_and_seed(tiny_imagefolder, policy):
    a = sources.load(_cfg(tiny_imagefolder, augment=policy), seed=0)
    b = sources.load(_cfg(tiny_imagefolder, augment=policy), seed=1)  # the seed argument drives synthetic only
    first = [a.train[(3, seed)][0] for seed in range(8)]
    torch.manual_seed(123)  # the global generator plays no part
    assert all(torch.equal(image, b.train[(3, seed)][0]) for seed, image in enumerate(first))
    assert len({image.sum().item() for image in first}) > 1  # different seeds, different crops


def test_split_without_images_names_it(tiny_imagefolder):
    for name in ("a", "b", "c"):
        shutil.rmtree(tiny_imagefolder / "val" / name)
    for call in (check_available, lambda cfg: sources.load(cfg, seed=0)):
        message = one_line_error(call, _cfg(tiny_imagefolder))
        assert f"no images in {tiny_imagefolder / 'val'} " in message
    (tiny_imagefolder / "val" / "a").mkdir()  # a class folder, but no image
    (tiny_imagefolder / "val" / "a" / "notes.txt").write_text("no image here")
    for call in (check_available, lambda cfg: sources.load(cfg, seed=0)):
        assert f"no images in {tiny_imagefolder / 'val'} " in one_line_error(call, _cfg(tiny_imagefolder))


def test_empty_class_folder_names_it(tiny_imagefolder):
    (tiny_imagefolder / "train" / "d").mkdir()
    (tiny_imagefolder / "val" / "d").mkdir()
    for call in (check_available, lambda cfg: sources.load(cfg, seed=0)):
        message = one_line_error(call, _cfg(tiny_imagefolder))
        assert f"class folder {tiny_imagefolder / 'train' / 'd'} holds no images" in message


@pytest.mark.parametrize(("holder", "lacking"), [("train", "val"), ("val", "train")])
def test_class_missing_from_a_split_names_class_and_split(tiny_imagefolder, holder, lacking):
    write_image_folder(tiny_imagefolder, {holder: 2}, ["zebra"])
    for call in (check_available, lambda cfg: sources.load(cfg, seed=0)):
        message = one_line_error(call, _cfg(tiny_imagefolder))
        holder_dir, lacking_dir = tiny_imagefolder / holder, tiny_imagefolder / lacking
        assert f"class 'zebra' is in {holder_dir} but missing from {lacking_dir} " in message


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"", "the file is empty"), (b"<html>not found</html>", "are no JPEG, PNG, GIF, BMP, WEBP")],
)
def test_preflight_names_a_file_that_is_not_an_image(tiny_imagefolder, content, problem):
    bad = tiny_imagefolder / "val" / "b" / "2.png"
    bad.write_bytes(content)
    message = one_line_error(check_available, _cfg(tiny_imagefolder))
    assert message.startswith(f"dataset.root: {bad} is not an image: ") and problem in message


def test_preflight_accepts_every_signature(tmp_path):
    formats = {"jpg": "JPEG", "bmp": "BMP", "webp": "WEBP", "tif": "TIFF", "ppm": "PPM", "png": "PNG"}
    for extension in formats:
        write_image_folder(tmp_path, {"train": 1, "val": 1}, [extension], extension=extension)
    check_available(_cfg(tmp_path))
    assert sources.load(_cfg(tmp_path), seed=0).num_classes == len(formats)


def test_an_image_that_does_not_decode_names_its_path(tiny_imagefolder):
    bad = tiny_imagefolder / "train" / "c" / "3.png"  # the last training sample
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"a PNG signature, then nothing valid")
    check_available(_cfg(tiny_imagefolder))  # the cheap look cannot see it
    data = sources.load(_cfg(tiny_imagefolder), seed=0)
    message = one_line_error(data.train.__getitem__, (11, 0))
    assert message.startswith(f"dataset.root: cannot decode image {bad}: cannot identify image file")
    assert "remove or replace the file" in message
    # Raised in a DataLoader process, it arrives in the training process as the same one line.
    loader = DataLoader(data.train, batch_size=4, sampler=[(i, 0) for i in range(12)], num_workers=1)
    with pytest.raises(DatasetError) as info:
        list(loader)
    assert str(info.value) == message
