"""Dataset readers on real data: the shared CIFAR-10 JPEGs, Imagenette sample, scikit-learn digits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resist.config import DatasetConfig, DatasetName
from resist.data import sources
from resist.data.cifar import CIFAR_STATS
from resist.data.cifar import check as cifar_layout
from resist.data.sources import DatasetError, check_available

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def cifar10(cifar10_folder: Path, decoded_cache_dir: Path) -> sources.DataSplits:
    """The shared CIFAR-10, decoded into this session's cache (the CLI test reads the copies)."""
    cfg = DatasetConfig(name=DatasetName.cifar10, root=str(cifar10_folder), cache_dir=str(decoded_cache_dir))
    return sources.load(cfg, seed=0)


def test_cifar10_image_folder_counts_and_labels(cifar10, cifar10_folder):
    assert cifar_layout(DatasetConfig(name=DatasetName.cifar10, root=str(cifar10_folder))) == "folder"
    assert "ImageFolder layout" in cifar10.description and "augment crop_flip" in cifar10.description
    check_available(DatasetConfig(name=DatasetName.cifar10, root=str(cifar10_folder)))  # 60,000 JPEG signatures
    assert (len(cifar10.train), len(cifar10.test), cifar10.num_classes) == (50_000, 10_000, 10)
    assert Counter(cifar10.train.base.labels.tolist()) == {c: 5000 for c in range(10)}
    assert Counter(cifar10.test.labels.tolist()) == {c: 1000 for c in range(10)}
    # Evaluation batches mix classes (batch-statistics BatchNorm needs it): no class dominates a batch.
    assert all(max(Counter(cifar10.test.labels[i : i + 100].tolist()).values()) < 30 for i in range(0, 10_000, 100))
    # Labels follow the standard CIFAR-10 class order (ImageFolder sorts names; they coincide).
    first_ship = cifar10_folder / "test" / "ship" / "0000.jpg"
    ship = CIFAR10_CLASSES.index("ship")
    index = (sources.mixed_order(10_000) == ship * 1000).nonzero().item()  # ship/0000.jpg, 8000th in folder order
    assert cifar10.test.labels[index] == ship
    pixels = torch.from_numpy(np.array(Image.open(first_ship).convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(cifar10.test.images[index], pixels)


def test_cifar10_transforms(cifar10):
    test_image, _ = cifar10.test[0]
    assert test_image.shape == (3, 32, 32) and test_image.dtype == torch.float32
    mean = torch.stack([cifar10.test[i][0] for i in range(0, 10_000, 50)]).mean(dim=(0, 2, 3))
    assert mean.abs().max() < 0.15  # normalised with CIFAR-10 statistics
    # Augmentation: a random 32x32 window of the image padded by 4 (zeros before normalisation),
    # flipped or not, drawn from the key's seed alone.
    mean, std = CIFAR_STATS[DatasetName.cifar10]
    padded = torch.nn.functional.pad(cifar10.train.base.images[0].float() / 255, (4, 4, 4, 4))
    padded = (padded - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    windows = [padded[:, i : i + 32, j : j + 32] for i in range(9) for j in range(9)]
    windows += [w.flip(-1) for w in windows]
    augmented = [cifar10.train[(0, seed)][0] for seed in range(8)]
    assert all(torch.equal(image, cifar10.train[(0, seed)][0]) for seed, image in enumerate(augmented))
    assert all(any(torch.allclose(image, w, rtol=0, atol=1e-6) for w in windows) for image in augmented)
    assert len({image.sum().item() for image in augmented}) > 1  # different seeds, different windows


def test_missing_cifar_names_the_path_layouts_and_the_fix(tmp_path):
    cfg = DatasetConfig(name=DatasetName.cifar10, root=str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError) as info:
        check_available(cfg)
    message = str(info.value)
    assert "\n" not in message and message.startswith("dataset.root: ")
    for part in ("nowhere", "cifar-10-batches-py", "<root>/train/<class>", "download=true", "cifar10-jpg.tar.gz"):
        assert part in message


def test_corrupt_pickle_layout_is_a_clean_error(tmp_path):
    (tmp_path / "cifar-100-python").mkdir()
    (tmp_path / "cifar-100-python" / "train").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match=r"^dataset.root: .*cifar-100-python is not a complete torchvision cifar100"):
        sources.load(DatasetConfig(name=DatasetName.cifar100, root=str(tmp_path)), seed=0)


def test_image_folder_reads_real_imagenet_jpegs(imagenette_folder):
    cfg = DatasetConfig(name=DatasetName.imagefolder, root=str(imagenette_folder), image_size=64)
    data = sources.load(cfg, seed=0)
    assert (len(data.train), len(data.test), data.num_classes) == (10, 10, 10)
    image, label = data.train[(3, 0)]
    assert image.shape == (3, 64, 64) and label == 3
    assert sorted(data.test[i][1] for i in range(10)) == list(range(10))
    assert "evaluation split: val/" in data.description and "augment crop_flip" in data.description
    check_available(cfg)  # every real JPEG passes the pre-flight look
    full = sources.load(DatasetConfig(name=DatasetName.imagenet, root=str(imagenette_folder)), seed=0)
    assert "augment resized_crop_flip" in full.description
    assert full.test[0][0].shape == (3, 224, 224) and full.train[(0, 0)][0].shape == (3, 224, 224)


def test_digits_fixed_split():
    data = sources.load(DatasetConfig(name=DatasetName.digits, image_size=16), seed=0)
    again = sources.load(DatasetConfig(name=DatasetName.digits, image_size=16), seed=7)
    assert (len(data.train), len(data.test), data.num_classes, data.in_channels) == (1437, 360, 10, 1)
    assert torch.equal(data.test.images, again.test.images) and torch.equal(data.test.labels, again.test.labels)
    assert data.test[0][0].shape == (1, 16, 16)
    assert abs(data.train.base.images.mean().item()) < 1e-5


def test_synthetic_is_a_pure_function_of_seed_and_index():
    cfg = DatasetConfig(
        name=DatasetName.synthetic, num_classes=7, channels=3, image_size=8, num_train_samples=20, num_test_samples=5
    )
    a, b, c = (sources.load(cfg, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.train[(13, 0)][0], b.train[(13, 5)][0]) and a.train[(13, 0)][1] == b.train[(13, 5)][1]
    assert not torch.equal(a.train[(13, 0)][0], c.train[(13, 0)][0])
    assert a.train[(0, 0)][0].shape == (3, 8, 8) and len(a.test) == 5
    assert {a.train[(i, 0)][1] for i in range(20)} <= set(range(7))
