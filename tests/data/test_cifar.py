"""The CIFAR reader on tiny generated copies of both layouts (torchvision's pickle batches, class
folders): loading, augmentation policies, seeded augmentation, one-line errors for bad input."""

from __future__ import annotations

import shutil

import pytest
import torch

from resist.config import AugmentPolicy, DatasetConfig, DatasetName
from resist.data import sources
from resist.data.cifar import CIFAR_STATS
from resist.data.cifar import check as cifar_layout
from resist.data.sources import check_available
from tests.conftest import CIFAR10_CLASSES, pixels, write_image_folder
from tests.helpers import one_line_error


def _cfg(root, **overrides) -> DatasetConfig:
    return DatasetConfig(name=DatasetName.cifar10, root=str(root), **overrides)


def test_pickle_layout(tiny_cifar10_pickles):
    assert cifar_layout(_cfg(tiny_cifar10_pickles)) == "pickle"
    check_available(_cfg(tiny_cifar10_pickles))
    data = sources.load(_cfg(tiny_cifar10_pickles), seed=0)
    assert (len(data.train), len(data.test), data.num_classes, data.in_channels) == (10, 4, 10, 3)
    assert "torchvision pickle layout" in data.description and "augment crop_flip" in data.description
    assert torch.equal(data.train.base.images[0], torch.from_numpy(pixels(32, 10_000)).permute(2, 0, 1))
    assert data.train.base.labels.tolist() == [(b + i) % 10 for b in range(5) for i in range(2)]
    assert data.test.labels.tolist() == [5, 6, 7, 8]
    assert data.test[0][0].shape == (3, 32, 32) and data.test[0][0].dtype == torch.float32


def test_folder_layout(tiny_cifar10_folder):
    assert cifar_layout(_cfg(tiny_cifar10_folder)) == "folder"
    check_available(_cfg(tiny_cifar10_folder))
    data = sources.load(_cfg(tiny_cifar10_folder), seed=0)
    assert (len(data.train), len(data.test), data.num_classes) == (20, 10, 10)
    assert data.description.startswith("cifar10 (ImageFolder layout at") and "20 train / 10 test" in data.description
    assert sorted(data.test.labels.tolist()) == list(range(10))
    ship = CIFAR10_CLASSES.index("ship")
    index = data.test.labels.tolist().index(ship)  # test/ship/0.png, the 9th test class (split 1 of the writer)
    expected = torch.from_numpy(pixels(32, (1 * 1000 + ship) * 1000)).permute(2, 0, 1)
    assert torch.equal(data.test.images[index], expected)


def test_crop_flip_is_a_padded_window_drawn_from_the_seed(tiny_cifar10_pickles):
    data = sources.load(_cfg(tiny_cifar10_pickles), seed=0)
    mean, std = CIFAR_STATS[DatasetName.cifar10]
    padded = torch.nn.functional.pad(data.train.base.images[0].float() / 255, (4, 4, 4, 4))
    padded = (padded - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    windows = [padded[:, i : i + 32, j : j + 32] for i in range(9) for j in range(9)]
    windows += [w.flip(-1) for w in windows]
    augmented = [data.train[(0, seed)][0] for seed in range(8)]
    torch.manual_seed(7)  # the global generator plays no part
    assert all(torch.equal(image, data.train[(0, seed)][0]) for seed, image in enumerate(augmented))
    assert all(any(torch.allclose(image, w, rtol=0, atol=1e-6) for w in windows) for image in augmented)
    assert len({image.sum().item() for image in augmented}) > 1


@pytest.mark.parametrize("policy", list(AugmentPolicy))
def test_every_policy_gives_32px_images(tiny_cifar10_folder, policy):
    data = sources.load(_cfg(tiny_cifar10_folder, augment=policy), seed=0)
    resolved = AugmentPolicy.crop_flip if policy == AugmentPolicy.auto else policy
    assert f"augment {resolved.value}" in data.description
    images = [data.train[(3, seed)][0] for seed in range(4)]
    assert all(image.shape == (3, 32, 32) for image in images)
    assert all(torch.equal(image, data.train[(3, seed)][0]) for seed, image in enumerate(images))
    if policy == AugmentPolicy.none:
        assert all(torch.equal(image, data.test.transform(data.train.base.images[3])) for image in images)


def test_class_missing_from_test_names_class_and_split(tiny_cifar10_folder):
    shutil.rmtree(tiny_cifar10_folder / "test" / "frog")
    for call in (check_available, lambda cfg: sources.load(cfg, seed=0)):
        message = one_line_error(call, _cfg(tiny_cifar10_folder))
        train, test = tiny_cifar10_folder / "train", tiny_cifar10_folder / "test"
        assert f"class 'frog' is in {train} but missing from {test} " in message


def test_split_without_images_names_it(tiny_cifar10_folder):
    shutil.rmtree(tiny_cifar10_folder / "test")
    (tiny_cifar10_folder / "test").mkdir()
    for call in (check_available, lambda cfg: sources.load(cfg, seed=0)):
        assert f"no images in {tiny_cifar10_folder / 'test'} " in one_line_error(call, _cfg(tiny_cifar10_folder))


def test_wrong_class_count_is_caught_before_training(tmp_path):
    root = write_image_folder(tmp_path, {"train": 1, "test": 1}, ["a", "b", "c"], size=32)
    assert "found 3 classes" in one_line_error(check_available, _cfg(root))


def test_corrupt_and_undecodable_images_name_their_path(tiny_cifar10_folder):
    bad = tiny_cifar10_folder / "train" / "cat" / "1.png"
    bad.write_bytes(b"GIF89a")  # a GIF signature, and nothing else
    check_available(_cfg(tiny_cifar10_folder))
    message = one_line_error(sources.load, _cfg(tiny_cifar10_folder), 0)
    assert message.startswith(f"dataset.root: cannot decode image {bad}: ")
    bad.write_bytes(b"\x00" * 64)
    message = one_line_error(check_available, _cfg(tiny_cifar10_folder))
    assert message.startswith(f"dataset.root: {bad} is not an image")


def test_an_image_of_another_size_names_its_path(tiny_cifar10_folder):
    odd = tiny_cifar10_folder / "test" / "dog" / "0.png"
    write_image_folder(tiny_cifar10_folder, {"test": 1}, ["dog"], size=24)
    assert one_line_error(sources.load, _cfg(tiny_cifar10_folder), 0).startswith(f"dataset.root: {odd} is 24×24 px")
