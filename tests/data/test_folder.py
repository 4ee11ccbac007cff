"""Image folders as datasets: layout, resizing, the RGB/gray decision, splits, and errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from gridrun.data import DataError, load_dataset, load_image_folder  # noqa: E402
from gridrun.data._folder import FOLDER_TEST_FRACTION  # noqa: E402

CLASSES = ("cat", "dog", "fox")
# Sizes of the 5 images of each class: landscape, portrait, square, small, large.
SIZES = [(40, 30), (20, 50), (32, 32), (9, 9), (64, 48)]


def _value(label: int, i: int) -> int:
    """The gray level that image ``i`` of class ``label`` is filled with: unique per image."""
    return 20 + 40 * label + 5 * i


def _write_tree(root, rgb=None, fmt="png"):
    """3 classes x 5 uniform gray images of different sizes; ``rgb`` = (class, i, colour)
    makes that one image an RGB image of the given colour."""
    for label, name in enumerate(CLASSES):
        folder = root / name
        folder.mkdir(parents=True)
        for i, size in enumerate(SIZES):
            img = Image.new("L", size, _value(label, i))
            if rgb is not None and rgb[:2] == (label, i):
                img = Image.new("RGB", size, rgb[2])
            img.save(folder / f"img{i}.{fmt}")
    return root


def _labels_of(x):
    """Recover (label, i) of each uniform image from its gray level."""
    v = x[:, 0, 0, 0].astype(int) - 20
    return v // 40, (v % 40) // 5


@pytest.fixture
def gray_tree(tmp_path):
    return _write_tree(tmp_path / "gray")


def test_gray_folder_loads_with_shapes_classes_and_labels(gray_tree):
    raw = load_image_folder(gray_tree, image_size=16)
    assert raw.classes == CLASSES
    assert raw.name == f"folder:{gray_tree}"
    assert raw.x_train.dtype == raw.x_test.dtype == np.uint8
    assert raw.y_train.dtype == np.int64
    assert raw.x_train.shape == (12, 16, 16, 1) and raw.x_test.shape == (3, 16, 16, 1)
    x = np.concatenate([raw.x_train, raw.x_test])
    y = np.concatenate([raw.y_train, raw.y_test])
    # uniform images stay uniform (exact gray levels) and stay with their labels
    assert np.all(x == x[:, :1, :1, :])
    labels, index = _labels_of(x)
    np.testing.assert_array_equal(labels, y)
    assert sorted(zip(labels.tolist(), index.tolist())) == [(c, i) for c in range(3)
                                                           for i in range(5)]


def test_test_split_is_a_fixed_stratified_fifth(gray_tree):
    raw = load_image_folder(gray_tree)
    assert FOLDER_TEST_FRACTION == 0.2
    assert np.bincount(raw.y_test).tolist() == [1, 1, 1]
    assert np.bincount(raw.y_train).tolist() == [4, 4, 4]
    again = load_image_folder(gray_tree)
    np.testing.assert_array_equal(again.x_test, raw.x_test)
    np.testing.assert_array_equal(again.x_train, raw.x_train)


def test_load_dataset_folder_prefix_makes_stratified_validation_split(gray_tree):
    name = f"folder:{gray_tree}"
    a = load_dataset(name, val_fraction=0.25, split_seed=0, image_size=8)
    b = load_dataset(name, val_fraction=0.25, split_seed=3, image_size=8)
    assert a.name == name and a.classes == CLASSES
    assert a.image_shape == (8, 8, 1)
    assert (len(a.y_train), len(a.y_val), len(a.y_test)) == (9, 3, 3)
    assert np.bincount(a.y_val).tolist() == [1, 1, 1]
    np.testing.assert_array_equal(a.x_test, b.x_test)  # the test set ignores split_seed
    seen = {tuple(_labels_of(d.x_val)[1]) for d in
            (load_dataset(name, val_fraction=0.25, split_seed=s, image_size=8) for s in range(6))}
    assert len(seen) > 1  # ...while split_seed moves validation
    train_val = np.concatenate([a.x_train, a.x_val])
    assert not np.isin(_labels_of(a.x_test)[1] + 10 * a.y_test,
                       _labels_of(train_val)[1] + 10 * np.concatenate([a.y_train, a.y_val])).any()


def test_default_image_size_is_32(gray_tree):
    assert load_dataset(f"folder:{gray_tree}").image_shape == (32, 32, 1)


def test_one_colour_image_makes_the_whole_set_rgb(tmp_path):
    root = _write_tree(tmp_path / "t", rgb=(1, 2, (200, 10, 30)))
    raw = load_image_folder(root, image_size=12)
    x = np.concatenate([raw.x_train, raw.x_test])
    y = np.concatenate([raw.y_train, raw.y_test])
    assert x.shape == (15, 12, 12, 3)
    colour = np.all(x == np.array([200, 10, 30], np.uint8), axis=(1, 2, 3))
    assert colour.sum() == 1 and y[colour] == [1]
    gray = x[~colour]
    assert np.all(gray[..., 0] == gray[..., 1]) and np.all(gray[..., 1] == gray[..., 2])


def test_rgb_files_with_gray_content_stay_gray(tmp_path):
    root = _write_tree(tmp_path / "t", rgb=(0, 0, (90, 90, 90)))
    raw = load_image_folder(root, image_size=8)
    assert raw.x_train.shape[-1] == 1
    assert 90 in np.concatenate([raw.x_train, raw.x_test])[:, 0, 0, 0]


def test_channels_forces_one_or_three(tmp_path, gray_tree):
    gray = load_image_folder(gray_tree, image_size=8)
    forced3 = load_image_folder(gray_tree, image_size=8, channels=3)
    assert forced3.x_train.shape == (12, 8, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(forced3.x_train[..., c], gray.x_train[..., 0])
    root = _write_tree(tmp_path / "c", rgb=(2, 4, (200, 10, 30)))
    forced1 = load_image_folder(root, image_size=8, channels=1)
    x = np.concatenate([forced1.x_train, forced1.x_test])
    assert x.shape == (15, 8, 8, 1)
    luma = np.asarray(Image.new("RGB", (1, 1), (200, 10, 30)).convert("L"))[0, 0]
    assert luma in x[:, 0, 0, 0]  # Pillow's "L" of the colour image
    with pytest.raises(DataError, match="channels=2 must be None"):
        load_image_folder(root, channels=2)


def test_images_are_center_cropped_then_resized(tmp_path):
    root = tmp_path / "crop"
    for name in ("wide", "tall"):
        (root / name).mkdir(parents=True)
    # black | white | black: only a center crop keeps no black
    wide = np.zeros((10, 30), np.uint8)
    wide[:, 10:20] = 255
    tall = np.zeros((30, 10), np.uint8)
    tall[10:20, :] = 255
    for i in range(5):
        Image.fromarray(wide).save(root / "wide" / f"{i}.png")
        Image.fromarray(tall).save(root / "tall" / f"{i}.png")
    raw = load_image_folder(root, image_size=8)
    assert np.all(raw.x_train == 255) and np.all(raw.x_test == 255)
    # and the resize is Pillow's bilinear of that square
    ramp = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (25, 1))
    for p in (root / "wide").iterdir():
        Image.fromarray(ramp).save(p)
    raw = load_image_folder(root, image_size=8)
    expected = np.asarray(Image.fromarray(ramp).resize((8, 8), Image.BILINEAR))
    got = np.concatenate([raw.x_train[raw.y_train == 1], raw.x_test[raw.y_test == 1]])
    assert len(got) == 5
    for img in got:
        np.testing.assert_array_equal(img[..., 0], expected)


def test_hidden_entries_other_files_and_nested_folders(gray_tree):
    (gray_tree / ".git").mkdir()
    (gray_tree / ".git" / "x.png").write_bytes(b"")
    (gray_tree / "README.txt").write_text("not a class")
    (gray_tree / "cat" / "notes.txt").write_text("ignored: not an image extension")
    (gray_tree / "cat" / "._img0.png").write_bytes(b"\0\0junk")  # macOS resource fork
    (gray_tree / "dog" / "more").mkdir()
    Image.new("L", (10, 10), 7).save(gray_tree / "dog" / "more" / "extra.PNG")
    Image.new("L", (10, 10), 7).save(gray_tree / "fox" / "pic.JPG", format="JPEG")
    raw = load_image_folder(gray_tree, image_size=8)
    assert raw.classes == CLASSES
    y = np.concatenate([raw.y_train, raw.y_test])
    assert np.bincount(y).tolist() == [5, 6, 6]


def test_jpeg_images_load(tmp_path):
    root = _write_tree(tmp_path / "j", fmt="jpg")
    raw = load_image_folder(root, image_size=8)
    assert raw.x_train.shape == (12, 8, 8, 1)


# ---------------------------------------------------------------- errors


def _one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="image folder .* not found") as err:
        load_image_folder(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in _one_line(err)
    with pytest.raises(DataError, match="not found"):
        load_dataset(f"folder:{tmp_path / 'nowhere'}")


def test_root_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="is not a directory"):
        load_image_folder(tmp_path / "f")


@pytest.mark.parametrize("n_classes", [0, 1])
def test_fewer_than_two_classes(tmp_path, n_classes):
    root = tmp_path / "r"
    root.mkdir()
    (root / ".hidden").mkdir()  # hidden folders are not classes
    if n_classes:
        (root / "only").mkdir()
        Image.new("L", (9, 9)).save(root / "only" / "a.png")
    with pytest.raises(DataError, match=f"has {n_classes} class folder.*at least 2") as err:
        load_image_folder(root)
    _one_line(err)


def test_class_without_images(gray_tree):
    (gray_tree / "emu").mkdir()
    (gray_tree / "emu" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="class 'emu' has no image file") as err:
        load_image_folder(gray_tree)
    assert str(gray_tree / "emu") in _one_line(err)


@pytest.mark.parametrize("content", ["garbage", "truncated"])
def test_unreadable_image_fails_naming_the_file(gray_tree, content):
    bad = gray_tree / "dog" / "broken.png"
    if content == "garbage":
        bad.write_bytes(b"this is not a png")
    else:
        good = (gray_tree / "dog" / "img4.png").read_bytes()
        bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="cannot read this image") as err:
        load_image_folder(gray_tree)
    assert _one_line(err).startswith(str(bad))


@pytest.mark.parametrize("size", [7, 0, -32, 8.0, True, "32"])
def test_image_size_must_be_an_integer_of_at_least_8(gray_tree, size):
    with pytest.raises(DataError, match="image_size=.* must be an integer >= 8"):
        load_image_folder(gray_tree, image_size=size)


def test_image_size_8_is_allowed(gray_tree):
    assert load_image_folder(gray_tree, image_size=8).x_train.shape[1:3] == (8, 8)


def test_missing_pillow_says_how_to_install_it(gray_tree, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # makes `from PIL import ...` fail
    with pytest.raises(DataError, match="needs Pillow: pip install pillow"):
        load_image_folder(gray_tree)


def test_folder_prefix_without_a_path(tmp_path):
    with pytest.raises(DataError, match="names no folder"):
        load_dataset("folder:")


def test_unknown_dataset_mentions_folders():
    with pytest.raises(DataError, match=r"or folder:<path>"):
        load_dataset("imagefolder")
