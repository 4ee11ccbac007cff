"""load_dataset's public behaviour: digits offline, names, data_dir, the Dataset record."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gridrun.data
from gridrun.data import DATASET_NAMES, DataError, Dataset, data_dir, load_dataset


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_digits_loads_offline_with_expected_shapes(digits):
    assert digits.name == "digits"
    assert digits.image_shape == (8, 8, 1) and digits.num_classes == 10
    assert digits.classes == tuple("0123456789")
    assert (len(digits.y_train), len(digits.y_val), len(digits.y_test)) == (1294, 144, 359)
    for x, y in ((digits.x_train, digits.y_train), (digits.x_val, digits.y_val),
                 (digits.x_test, digits.y_test)):
        assert x.dtype == np.uint8 and x.ndim == 4 and y.dtype == np.int64
    # 0..16 ink levels scaled to the full byte range.
    assert digits.x_train.min() == 0 and digits.x_train.max() == 255
    assert np.all(np.bincount(digits.y_test) >= 35)  # stratified: every digit is tested


def test_digits_test_split_is_fixed_whatever_the_split_seed(digits):
    other = load_dataset("digits", split_seed=9)
    np.testing.assert_array_equal(other.x_test, digits.x_test)
    np.testing.assert_array_equal(other.y_test, digits.y_test)
    assert not np.array_equal(other.x_val, digits.x_val)  # the seed does move validation


def test_digits_pixels_match_scikit_learn(digits):
    from sklearn.datasets import load_digits

    sk = load_digits()
    flat = sk.images.reshape(len(sk.images), -1)
    first = digits.x_test[0, :, :, 0].ravel()
    matches = np.flatnonzero(np.all(np.rint(flat * 255 / 16) == first, axis=1))
    assert matches.size >= 1 and sk.target[matches[0]] == digits.y_test[0]


@pytest.mark.parametrize("name, hint", [("fashion-mnist", "did you mean 'fashion_mnist'"),
                                        ("imagenet", "")])
def test_unknown_dataset_lists_the_allowed_names(name, hint):
    with pytest.raises(DataError, match="unknown dataset") as err:
        load_dataset(name)
    for allowed in DATASET_NAMES:
        assert allowed in str(err.value)
    assert hint in str(err.value)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_missing_files_without_download_say_where_to_put_them(tmp_path, name):
    with pytest.raises(DataError, match="not found: put .* there or load with download=True") as e:
        load_dataset(name, root=tmp_path, download=False)
    assert str(tmp_path) in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("GRIDRUN_DATA_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "explicit"
    monkeypatch.delenv("GRIDRUN_DATA_DIR")
    assert data_dir() == tmp_path / "xdg" / "gridrun"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid per the XDG spec
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".cache" / "gridrun"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data_dir() == tmp_path / "home" / ".cache" / "gridrun"


def test_load_dataset_reads_from_data_dir_by_default(monkeypatch, tmp_path):
    monkeypatch.setenv("GRIDRUN_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=str(tmp_path / "mnist")):
        load_dataset("mnist", download=False)


def _arrays(n=4, shape=(2, 2, 1)):
    return np.zeros((n, *shape), np.uint8), np.zeros(n, np.int64)


def test_dataset_repr_is_short_and_properties_work():
    x, y = _arrays()
    ds = Dataset("toy", x, y, x, y, x, y, ["a", "b"])
    assert repr(ds) == ("Dataset(name='toy', train=4, val=4, test=4, image_shape=(2, 2, 1), "
                        "classes=2)")
    assert ds.classes == ("a", "b") and ds.num_classes == 2
    with pytest.raises(AttributeError):
        ds.name = "other"  # frozen


@pytest.mark.parametrize(
    "change, message",
    [
        ({"x_val": np.zeros((4, 2, 2, 1), np.float32)}, "val split: images must be uint8"),
        ({"x_test": np.zeros((4, 2, 2), np.uint8)}, "test split: images must be uint8"),
        ({"y_train": np.zeros(4, np.int32)}, "train split: labels must be int64"),
        ({"y_val": np.zeros(3, np.int64)}, "val split: 4 images but 3 labels"),
        ({"y_test": np.full(4, 2, np.int64)}, "labels span 2..2, but there are 2 classes"),
        ({"x_test": np.zeros((4, 3, 2, 1), np.uint8)}, "test images are"),
    ],
)
def test_dataset_rejects_inconsistent_arrays(change, message):
    x, y = _arrays()
    fields = dict(x_train=x, y_train=y, x_val=x, y_val=y, x_test=x, y_test=y)
    with pytest.raises(DataError, match=message):
        Dataset("toy", classes=("a", "b"), **{**fields, **change})


def test_dataset_survives_pickling(digits):
    # Ray ships the dataset to trial workers by pickling it.
    back = pickle.loads(pickle.dumps(digits))
    np.testing.assert_array_equal(back.x_train, digits.x_train)
    assert repr(back) == repr(digits)


def test_public_api():
    assert set(gridrun.data.__all__) == {
        "DATASET_NAMES", "FOLDER_PREFIX", "NORMALIZATIONS", "Dataset", "DataError", "data_dir",
        "load_dataset", "load_image_folder", "imbalance_indices", "noisy_labels",
        "class_weights", "oversample_indices", "normalization_params", "normalize_images"}
    assert issubclass(DataError, ValueError)
    with pytest.raises(AttributeError):
        gridrun.data.no_such_thing  # noqa: B018


def test_importing_the_data_package_pulls_in_no_framework():
    code = (
        "import sys, gridrun.data as d\n"
        "assert 'gridrun.data._load' not in sys.modules  # loaders wait until first use\n"
        "import gridrun.data._load, gridrun.data._cifar, gridrun.data._idx\n"
        "d.load_dataset\n"
        "bad = {'torch', 'tensorflow', 'ray', 'sklearn'} & {m.split('.')[0] for m in sys.modules}\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).parent)
    assert result.returncode == 0, result.stderr
