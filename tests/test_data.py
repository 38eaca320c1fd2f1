"""Data modules on real or generated data, the disk cache, the two loaders, the clear errors.

Real data where this machine has it (digits bundled, Fashion-MNIST from Debian's files, MNIST-1D
generated); torchvision datasets that are not here (MNIST, CIFAR, Flowers-102) get tiny files
written in their own on-disk formats, read through the same code paths as the real ones.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import FAST, FMNIST_DEBIAN, ROOT, compose_config
from hydra.utils import instantiate
from PIL import Image

from depthbench.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    DigitsDataModule,
    FashionMNISTDataModule,
    Flowers102DataModule,
    ImageFolderDataModule,
    MNIST1DDataModule,
    MNISTDataModule,
    SyntheticDataModule,
)
from depthbench.data.augment import random_crop, random_flip
from depthbench.data.base import InMemoryDataModule
from depthbench.data.cache import cache_path, load_or_build
from depthbench.data.classic import classic_dataset
from depthbench.errors import ConfigError, DataError

SHARED_DATA = ROOT / "data"  # Fashion-MNIST is decompressed (and MNIST-1D generated) once
needs_fmnist = pytest.mark.skipif(
    not (FMNIST_DEBIAN / "train-images-idx3-ubyte.gz").exists()
    and not (SHARED_DATA / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists(),
    reason="Fashion-MNIST not on this machine (Debian package dataset-fashion-mnist)",
)


# ---- helpers: tiny datasets in their real on-disk formats ---------------------------------
def _write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    """An IDX uint8 file (MNIST's format): 0x00 0x00 0x08 ndim, big-endian dims, bytes."""
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)


def _fake_mnist(root: Path, n_train: int = 60, n_test: int = 20) -> None:
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10, gz=True)


def _fake_cifar(root: Path, folder: str, files: list[str], key: str, classes: int, n: int = 20):
    rng = np.random.default_rng(0)
    (root / folder).mkdir(parents=True, exist_ok=True)
    for name in files:
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 key: [int(i) % classes for i in rng.integers(0, 1000, n)]}  # fmt: skip
        with open(root / folder / name, "wb") as f:
            pickle.dump(entry, f)


def _write_png(path: Path, seed: int, size: tuple[int, int] = (12, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _image_tree(root: Path, classes: dict[str, int], folder: str = "train") -> None:
    for c, (name, n) in enumerate(classes.items()):
        for i in range(n):
            _write_png(root / folder / name / f"{i}.png", seed=100 * c + i)


def _assert_same_examples(dm: InMemoryDataModule, split: str, n: int = 6) -> None:
    """The classic per-sample path and the in-memory batch path give identical examples."""
    ds = classic_dataset(dm, split)
    classic = torch.stack([ds[i][0] for i in range(n)])
    labels = torch.tensor([ds[i][1] for i in range(n)])
    x, y = dm.splits[split]
    fast = dm.transform(x[:n], train=False)
    torch.testing.assert_close(classic, fast, rtol=0, atol=1e-6)
    assert torch.equal(labels, y[:n])


# ---- every data config instantiates ------------------------------------------------------
# this file's options (text data options are tested with the transformer)
DATA_OPTIONS = ["cifar10", "cifar100", "digits", "fashion_mnist", "flowers102", "image_folder",
                "mnist", "mnist1d", "synthetic"]  # fmt: skip


@pytest.mark.parametrize("option", DATA_OPTIONS)
def test_data_config_mirrors_constructor(option: str, tmp_path: Path) -> None:
    cfg = compose_config([f"data={option}"], tmp_path, data_dir=tmp_path)
    dm = instantiate(cfg.data)
    assert isinstance(dm, InMemoryDataModule)
    assert dm.loader == "memory" and dm.batch_size == cfg.data.batch_size
    assert not any(tmp_path.iterdir()) or all(p.name == ".hydra" for p in tmp_path.iterdir())


# ---- real and generated data -------------------------------------------------------------
def test_digits_splits_seeded_and_subset() -> None:
    a, b, c = (DigitsDataModule(seed=s, train_size=50, batch_size=16) for s in (0, 0, 1))
    for dm in (a, b, c):
        dm.setup()
    assert {k: len(v[1]) for k, v in a.splits.items()} == {"train": 50, "val": 144, "test": 360}
    assert a.num_classes == 10 and a.input_shape == (1, 8, 8)
    assert torch.bincount(a.splits["train"][1]).tolist() == [5] * 10  # balanced subset
    assert torch.equal(a.splits["val"][0], b.splits["val"][0])  # same seed, same split
    assert not torch.equal(a.splits["val"][0], c.splits["val"][0])
    assert int(a.splits["test"][1].min()) == 0 and int(a.splits["test"][1].max()) == 9


@needs_fmnist
def test_fashion_mnist_from_debian_files_cached() -> None:
    dm = FashionMNISTDataModule(root=SHARED_DATA, val_size=5000, train_size=100, batch_size=100)
    dm.prepare_data()
    dm.setup()
    assert {k: len(v[1]) for k, v in dm.splits.items()} == {
        "train": 100,
        "val": 5000,
        "test": 10000,
    }
    assert dm.input_shape == (1, 28, 28) and dm.num_classes == 10
    assert dm.splits["train"][0].dtype == torch.uint8
    assert cache_path(SHARED_DATA / "FashionMNIST", "train").exists()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (100, 1, 28, 28) and x.dtype == torch.float32 and y.max() <= 9


@needs_fmnist
def test_fashion_mnist_fast_and_torchvision_paths_agree() -> None:
    kw = dict(root=SHARED_DATA, val_size=5000, train_size=200, batch_size=64, eval_batch_size=64)
    fast = FashionMNISTDataModule(**kw)
    classic = FashionMNISTDataModule(loader="torchvision", **kw)
    for dm in (fast, classic):
        dm.setup()
    assert isinstance(classic.val_dataloader(), torch.utils.data.DataLoader)
    xf, yf = next(iter(fast.val_dataloader()))
    xc, yc = next(iter(classic.val_dataloader()))
    torch.testing.assert_close(xc, xf, rtol=0, atol=1e-6)
    assert torch.equal(yc, yf)
    _assert_same_examples(classic, "train")
    # augmented training batches keep their shape and stay normalised
    aug = FashionMNISTDataModule(loader="torchvision", augment=True, crop_padding=2, **kw)
    aug.setup()
    xa, _ = next(iter(aug.train_dataloader()))
    assert xa.shape == (64, 1, 28, 28) and torch.isfinite(xa).all()


def test_mnist1d_generated_shapes_and_cache() -> None:
    dm = MNIST1DDataModule(root=SHARED_DATA, val_size=500, seed=3)
    dm.setup()
    assert {k: len(v[1]) for k, v in dm.splits.items()} == {"train": 3500, "val": 500, "test": 1000}
    assert dm.input_shape == (1, 40) and dm.num_classes == 10
    assert dm.splits["train"][0].dtype == torch.float32
    assert cache_path(SHARED_DATA / "MNIST1D", "test").exists()
    again = MNIST1DDataModule(root=SHARED_DATA, val_size=500, seed=3)
    again.setup()  # from the cache: identical
    assert torch.equal(again.splits["train"][0], dm.splits["train"][0])


def test_mnist1d_trains_a_conv1d_cnn(tmp_path: Path) -> None:
    from depthbench.core.run import train

    cfg = compose_config(["data=mnist1d", "model=cnn", *FAST], tmp_path, data_dir=SHARED_DATA)
    metrics = train(cfg)
    assert metrics["status"] == "ok" and metrics["data"] == "mnist1d"


def test_synthetic_shapes_and_both_loaders() -> None:
    dm = SyntheticDataModule(shape=[3, 8, 8], num_classes=4, num_train=100, num_test=20,
                             batch_size=16, loader="torchvision")  # fmt: skip
    dm.setup()
    assert dm.input_shape == (3, 8, 8) and dm.num_classes == 4
    assert {k: len(v[1]) for k, v in dm.splits.items()} == {"train": 90, "val": 10, "test": 20}
    _assert_same_examples(dm, "val")
    features = SyntheticDataModule(
        shape=[5], num_classes=3, num_train=40, num_test=10, batch_size=8
    )
    features.setup()
    assert features.splits["train"][0].dtype == torch.float32 and features.input_shape == (5,)


# ---- torchvision datasets from tiny files in their formats --------------------------------
def test_mnist_reads_idx_files_and_names_truncated_file(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    dm = MNISTDataModule(
        root=tmp_path, download=False, val_size=10, batch_size=10, loader="torchvision"
    )
    dm.prepare_data()
    dm.setup()
    assert {k: len(v[1]) for k, v in dm.splits.items()} == {"train": 50, "val": 10, "test": 20}
    assert dm.input_shape == (1, 28, 28) and not dm.flip  # digits are never mirrored
    _assert_same_examples(dm, "test")
    # a truncated file (the cache rebuilt because the file changed) is named
    images = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte is truncated"):
        MNISTDataModule(root=tmp_path, download=False).setup()


def test_cifar10_from_pickle_batches(tmp_path: Path) -> None:
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    _fake_cifar(tmp_path, "cifar-10-batches-py", files, "labels", 10)
    dm = CIFAR10DataModule(
        root=tmp_path, download=False, val_size=10, batch_size=10, loader="torchvision"
    )
    dm.prepare_data()
    dm.setup()
    assert {k: len(v[1]) for k, v in dm.splits.items()} == {"train": 90, "val": 10, "test": 20}
    assert dm.input_shape == (3, 32, 32) and dm.mean.shape == (3,)
    assert int(dm.splits["train"][1].min()) >= 0 and int(dm.splits["train"][1].max()) <= 9
    _assert_same_examples(dm, "val")
    assert cache_path(tmp_path / "cifar-10-batches-py", "train").exists()


def test_cifar100_fine_labels(tmp_path: Path) -> None:
    _fake_cifar(tmp_path, "cifar-100-python", ["train", "test"], "fine_labels", 100, n=300)
    dm = CIFAR100DataModule(root=tmp_path, download=False, val_size=0.1)
    dm.setup()
    assert len(dm.splits["train"][1]) == 270 and dm.num_classes <= 100
    assert int(dm.splits["train"][1].max()) > 9  # fine labels, not the 20 coarse ones


def test_corrupt_cache_is_rebuilt_and_corrupt_file_named(tmp_path: Path) -> None:
    _fake_cifar(tmp_path, "cifar-10-batches-py", [*(f"data_batch_{i}" for i in range(1, 6)),
                                                  "test_batch"], "labels", 10)  # fmt: skip
    first = CIFAR10DataModule(root=tmp_path, download=False, val_size=10, batch_size=10)
    first.setup()
    cache = cache_path(tmp_path / "cifar-10-batches-py", "train")
    cache.write_bytes(cache.read_bytes()[:200])  # truncated cache
    second = CIFAR10DataModule(root=tmp_path, download=False, val_size=10, batch_size=10)
    second.setup()  # rebuilt from the batch files
    assert torch.equal(first.splits["train"][0], second.splits["train"][0])
    assert torch.load(cache, weights_only=True)["tensors"]["x"].shape == (100, 3, 32, 32)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:500])
    with pytest.raises(DataError, match="data_batch_3 is truncated or corrupt"):
        CIFAR10DataModule(root=tmp_path, download=False).setup()


def test_flowers102_official_splits(tmp_path: Path) -> None:
    from scipy.io import savemat

    folder = tmp_path / "flowers-102"
    for i in range(1, 13):
        _write_png(folder / "jpg" / f"image_{i:05d}.jpg", seed=i, size=(20, 16))
    savemat(folder / "imagelabels.mat", {"labels": np.array([1, 2, 3] * 4)})
    savemat(folder / "setid.mat", {"trnid": np.arange(1, 7), "valid": np.arange(7, 10),
                                   "tstid": np.arange(10, 13)})  # fmt: skip
    dm = Flowers102DataModule(root=tmp_path, download=False, image_size=8, batch_size=4,
                              loader="torchvision")  # fmt: skip
    dm.setup()
    assert {k: len(v[1]) for k, v in dm.splits.items()} == {"train": 6, "val": 3, "test": 3}
    assert dm.input_shape == (3, 8, 8) and dm.splits["train"][1].tolist() == [0, 1, 2] * 2
    _assert_same_examples(dm, "test", n=3)


# ---- image_folder ------------------------------------------------------------------------
def test_image_folder_carves_seeded_test_split(tmp_path: Path) -> None:
    _image_tree(tmp_path, {"rose": 10, "sunflower": 10, "tulip": 10})
    kw = dict(root=tmp_path, image_size=8, batch_size=4, val_size=3, test_size=0.2)
    a, b = ImageFolderDataModule(**kw), ImageFolderDataModule(loader="torchvision", **kw)
    for dm in (a, b):
        dm.prepare_data()
        dm.setup()
    assert a.classes == ["rose", "sunflower", "tulip"] and a.num_classes == 3
    assert {k: len(v[1]) for k, v in a.splits.items()} == {"train": 21, "val": 3, "test": 6}
    assert torch.bincount(a.splits["test"][1]).tolist() == [2, 2, 2]  # stratified
    assert a.input_shape == (3, 8, 8) and a.splits["train"][0].dtype == torch.uint8
    assert torch.equal(a.splits["test"][0], b.splits["test"][0])  # same seed, same split
    _assert_same_examples(b, "test")  # decoded from the files one at a time
    _assert_same_examples(b, "train")


def test_image_folder_uses_test_and_val_folders(tmp_path: Path) -> None:
    _image_tree(tmp_path, {"a": 4, "b": 4})
    _image_tree(tmp_path, {"a": 2, "b": 3}, folder="test")
    _image_tree(tmp_path, {"a": 1, "b": 1}, folder="val")
    dm = ImageFolderDataModule(root=tmp_path, image_size=[6, 4], batch_size=2)
    dm.setup()
    assert {k: len(v[1]) for k, v in dm.splits.items()} == {"train": 8, "val": 2, "test": 5}
    assert dm.input_shape == (3, 6, 4)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no train/ folder"):
        ImageFolderDataModule(root=tmp_path).prepare_data()
    (tmp_path / "train" / "rose").mkdir(parents=True)
    (tmp_path / "train" / "rose" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="no images"):
        ImageFolderDataModule(root=tmp_path).setup()
    _image_tree(tmp_path, {"rose": 3})
    with pytest.raises(DataError, match="only one class"):
        ImageFolderDataModule(root=tmp_path).setup()
    _image_tree(tmp_path, {"rose": 3, "tulip": 3})
    (tmp_path / "train" / "tulip" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"broken\.png.*data.on_bad_files=skip") as err:
        ImageFolderDataModule(root=tmp_path, val_size=1, test_size=0.3, batch_size=2).setup()
    assert "\n" not in str(err.value)


def test_image_folder_skips_unreadable_files_when_asked(tmp_path: Path, caplog) -> None:
    _image_tree(tmp_path, {"rose": 4, "tulip": 4})
    (tmp_path / "train" / "tulip" / "broken.png").write_bytes(b"\x89PNG not really")
    kw = dict(root=tmp_path, val_size=1, test_size=0.25, batch_size=2)
    with caplog.at_level("WARNING", logger="depthbench"):
        dm = ImageFolderDataModule(on_bad_files="skip", **kw)
        dm.setup()
    assert sum(len(y) for _, y in dm.splits.values()) == 8  # the 8 readable images, not 9
    assert not any("broken" in str(f) for f in dm.source_files["train"] + dm.source_files["test"])
    assert "skipped 1 unreadable image(s)" in caplog.text and "broken.png" in caplog.text
    with pytest.raises(DataError, match=r"broken\.png"):  # the cache remembers the bad file
        ImageFolderDataModule(**kw).setup()
    with pytest.raises(ConfigError, match=r"data\.on_bad_files must be one of error, skip"):
        ImageFolderDataModule(on_bad_files="ignore", **kw)


# ---- missing data and bad config ---------------------------------------------------------
def test_missing_datasets_say_where_and_how(tmp_path: Path) -> None:
    cases = [
        (CIFAR10DataModule(root=tmp_path, download=False), "cifar10 not found in .*cifar-10"),
        (CIFAR100DataModule(root=tmp_path, download=False), "cifar100 not found"),
        (MNISTDataModule(root=tmp_path, download=False), "mnist not found in .*MNIST/raw"),
        (Flowers102DataModule(root=tmp_path, download=False), "flowers102 not found"),
        (
            FashionMNISTDataModule(root=tmp_path, download=False, debian_dir=tmp_path / "none"),
            "fashion_mnist not found.*apt-get install dataset-fashion-mnist",
        ),
    ]
    for dm, pattern in cases:
        with pytest.raises(DataError, match=pattern) as err:
            dm.prepare_data()
        assert "\n" not in str(err.value) and "download disabled" in str(err.value)


def test_bad_loader_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"data\.loader must be one of memory, torchvision"):
        DigitsDataModule(loader="dali")
    with pytest.raises(ConfigError, match="num_workers"):
        DigitsDataModule(num_workers=-1)
    with pytest.raises(ConfigError, match="image_size"):
        ImageFolderDataModule(image_size=[0, 3])


# ---- the pieces of the fast path ---------------------------------------------------------
def test_random_crop_is_a_shifted_window_per_example() -> None:
    x = torch.arange(2 * 1 * 5 * 6, dtype=torch.float32).view(2, 1, 5, 6) + 1
    out = random_crop(x, padding=2, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    dy, dx = torch.randint(0, 5, (2,), generator=g), torch.randint(0, 5, (2,), generator=g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        expected = padded[i, :, dy[i] : dy[i] + 5, dx[i] : dx[i] + 6]
        assert torch.equal(out[i], expected)
    seq = random_crop(torch.ones(3, 1, 40), padding=4)  # 1-D sequences shift along L
    assert seq.shape == (3, 1, 40)
    flipped = random_flip(x, generator=torch.Generator().manual_seed(1))
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))


def test_load_or_build_rebuilds_unreadable_or_stale_cache(tmp_path: Path) -> None:
    path = tmp_path / "depthbench_cache_train.pt"
    calls = []

    def build() -> dict[str, torch.Tensor]:
        calls.append(1)
        return {"x": torch.arange(3)}

    load_or_build(path, build, fingerprint=["a", 1])
    load_or_build(path, build, fingerprint=["a", 1])
    assert len(calls) == 1  # second time from the cache
    load_or_build(path, build, fingerprint=["a", 2])
    assert len(calls) == 2  # stale fingerprint
    path.write_bytes(b"garbage")
    assert torch.equal(load_or_build(path, build, fingerprint=["a", 2])["x"], torch.arange(3))
    assert len(calls) == 3 and not list(tmp_path.glob(".*.tmp"))


def test_splits_move_to_the_trainer_device_once() -> None:
    """On an accelerator the loader serves batches from device-resident split tensors."""
    dm = DigitsDataModule(batch_size=16)
    dm.setup()
    assert dm.target_device().type == "cpu"  # no trainer: stay on the CPU
    assert dm.split_on("train", torch.device("cpu"))[0] is dm.splits["train"][0]
    device = torch.device("meta")  # stands in for cuda: a real move without a GPU
    x, y = dm.split_on("train", device)
    assert x.device == device and y.device == device and x.shape == dm.splits["train"][0].shape
    assert dm.split_on("train", device)[0] is x  # moved once, then reused
    dm.teardown("fit")
    assert dm.split_on("train", device)[0] is not x


def test_train_runs_with_the_torchvision_loader(tmp_path: Path) -> None:
    from depthbench.core.run import train

    cfg = compose_config(["data.loader=torchvision", "data.augment=true", *FAST], tmp_path)
    assert train(cfg)["status"] == "ok"


def test_tensor_batch_loader_resumes_mid_epoch() -> None:
    from depthbench.data.loader import TensorBatchLoader

    x, y = torch.arange(20).view(20, 1), torch.arange(20)
    ref = TensorBatchLoader(x, y, batch_size=3, shuffle=True, seed=5)
    batches = [b for _ in range(2) for b, _ in ref]  # two epochs of 7 batches
    live = TensorBatchLoader(x, y, batch_size=3, shuffle=True, seed=5)
    it = iter(live)
    for _ in range(4):
        next(it)
    state = live.state_dict()
    assert state == {"epoch": 0, "batches": 4}
    resumed = TensorBatchLoader(x, y, batch_size=3, shuffle=True, seed=5)
    resumed.load_state_dict(state)
    rest = [b for b, _ in resumed] + [b for b, _ in resumed]
    assert all(torch.equal(a, b) for a, b in zip(rest, batches[4:], strict=True))
    assert resumed.state_dict() == {"epoch": 1, "batches": 7}  # both epochs done


def test_data_root_expands_the_home_folder() -> None:
    """`data.root="~/x"` (quoted: Hydra's grammar refuses a bare ~) means the user's ~/x."""
    cfg = compose_config(["data=image_folder", "data.root='~/depthbench_flowers'"])
    assert instantiate(cfg.data).root == Path.home() / "depthbench_flowers"


def test_a_split_over_the_size_limit_stays_on_the_cpu_and_batches_are_copied() -> None:
    """Above ``device_max_mb`` a split is not copied whole; each batch goes to the device."""
    from depthbench.data.loader import TensorBatchLoader

    dm = DigitsDataModule(batch_size=16, device_max_mb=0.001)
    dm.setup()
    device = torch.device("meta")  # stands in for cuda
    x, y = dm.split_on("train", device)
    assert x is dm.splits["train"][0] and x.device.type == "cpu"
    loader = TensorBatchLoader(x, y, batch_size=16, shuffle=True, device=device)
    xb, yb = next(iter(loader))
    assert xb.device == device and yb.device == device and xb.shape == (16, *x.shape[1:])
    small = DigitsDataModule(batch_size=16)  # digits are far below the default 1024 MB
    small.setup()
    assert small.split_on("train", device)[0].device == device
