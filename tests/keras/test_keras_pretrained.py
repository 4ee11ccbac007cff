"""Pretrained .npz weights for the Keras backbones: saving, loading the base only, refusing
weights that do not fit (or a PyTorch checkpoint), sha256 pins, downloads and the cache."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile

import keras
import numpy as np
import pytest

from gridrun.keras._models import BACKBONES, base_variables, build_model, head_variables
from gridrun.keras._pretrained import (load_pretrained, model_bytes, save_weights,
                                       weights_cache_dir)

SMALL = {"vgg": {"width": 0.25}, "resnet18": {"width": 0.25}}


def weights(variables):
    return {v.path: np.asarray(v.numpy()) for v in variables}


def trained_source(backbone="resnet20", classes=10, seed=0, **options):
    """A model whose weights and batch-norm statistics are far from any fresh init."""
    model = build_model(backbone, 1, classes, 8, True, 0.0, seed=seed, **options)
    rng = np.random.default_rng(seed)
    model(rng.normal(2.0, 3.0, (16, 8, 8, 1)).astype("float32"), training=True)
    for v in model.trainable_variables:
        v.assign(v.numpy() + rng.normal(size=v.shape).astype("float32"))
    return model


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_load_copies_the_base_exactly_and_leaves_the_head(backbone, tmp_path):
    kw = SMALL.get(backbone, {})
    source = trained_source(backbone, classes=10, **kw)
    save_weights(source, tmp_path / "w.npz")
    target = build_model(backbone, 1, 5, 8, True, 0.0, seed=1, **kw)  # 5 classes
    head_before = weights(head_variables(target))
    src, tgt = weights(source.weights), weights(base_variables(target))
    differs = [k for k in tgt if not np.array_equal(src[k], tgt[k])]
    assert len(differs) > len(tgt) // 2  # so the check below can fail

    loaded = load_pretrained(target, tmp_path / "w.npz")

    assert loaded == [v.path for v in base_variables(target)]
    tgt = weights(base_variables(target))
    assert all(np.array_equal(tgt[k], src[k]) for k in loaded)
    head_after = weights(head_variables(target))
    assert head_before and all(np.array_equal(head_after[k], v) for k, v in head_before.items())


def test_a_loaded_model_computes_what_the_source_computes(tmp_path):
    source = trained_source("simple_cnn", global_pool=True)
    save_weights(source, tmp_path / "w.npz")
    target = build_model("simple_cnn", 1, 10, 8, True, 0.0, seed=5, global_pool=True)
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 1)).astype("float32")
    base = keras.Model(source.input, source.get_layer("features.4").output)
    target_base = keras.Model(target.input, target.get_layer("features.4").output)
    load_pretrained(target, tmp_path / "w.npz")
    np.testing.assert_array_equal(np.asarray(target_base(x, training=False)),
                                  np.asarray(base(x, training=False)))


def test_saved_files_are_model_bytes_written_atomically(tmp_path):
    model = trained_source()
    save_weights(model, tmp_path / "w.npz")
    assert (tmp_path / "w.npz").read_bytes() == model_bytes(model)
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]  # no temporary file left
    with np.load(io.BytesIO(model_bytes(model))) as npz:
        assert set(npz.files) == {v.path for v in model.weights}
        assert "stem.1/moving_variance" in npz.files


def test_the_heads_shape_does_not_matter(tmp_path):
    # simple_cnn's head depends on the image size; the base does not
    source = build_model("simple_cnn", 1, 10, 28, False, 0.0)
    save_weights(source, tmp_path / "w.npz")
    target = build_model("simple_cnn", 1, 3, 8, False, 0.0, seed=1, global_pool=True)
    assert load_pretrained(target, tmp_path / "w.npz") == \
        [v.path for v in base_variables(target)]
    np.testing.assert_array_equal(target.get_layer("features.0.0").kernel.numpy(),
                                  source.get_layer("features.0.0").kernel.numpy())


def test_a_base_only_file_loads(tmp_path):
    source = trained_source()
    np.savez(tmp_path / "base.npz", **weights(base_variables(source)))
    target = build_model("resnet20", 1, 10, 8, True, 0.0, seed=1)
    assert load_pretrained(target, tmp_path / "base.npz")
    np.testing.assert_array_equal(target.get_layer("stem.0").kernel.numpy(),
                                  source.get_layer("stem.0").kernel.numpy())


@pytest.mark.parametrize("source_kw, target_kw, message", [
    (dict(backbone="simple_cnn"), dict(backbone="resnet20"),
     r"resnet20: not in the model: features\.0\.0/kernel, features\.0\.1/gamma, "
     r"features\.0\.1/beta and \d+ more; missing from the file: stem\.0/kernel"),
    (dict(backbone="resnet20"), dict(backbone="resnet20", width=2.0),
     r"resnet20: other shapes: stem\.0/kernel \(file 3x3x1x16, model 3x3x1x32\)"),
    (dict(backbone="resnet20"), dict(backbone="resnet20", depth=32),
     r"resnet20 \(depth 32\): other shapes: blocks\.3\.conv1/kernel \(file 3x3x16x32, "
     r"model 3x3x16x16\).*missing from the file: blocks\.9\.conv1/kernel"),
    (dict(backbone="resnet20", batchnorm=False), dict(backbone="resnet20"),
     r"resnet20: not in the model: stem\.0/bias.*and \d+ more; missing from the file: "
     r"stem\.1/gamma"),
    (dict(backbone="vgg", depth=11), dict(backbone="vgg", depth=13), r"vgg \(depth 13\): "),
    (dict(backbone="resnet20", c=3), dict(backbone="resnet20"),
     r"resnet20: other shapes: stem\.0/kernel \(file 3x3x3x16, model 3x3x1x16\) "
     r"\(from .*w\.npz\)$"),
])
def test_weights_of_another_backbone_are_refused(tmp_path, source_kw, target_kw, message):
    def make(backbone, c=1, batchnorm=True, **options):
        return build_model(backbone, c, 10, 8, batchnorm, 0.0,
                           **{**SMALL.get(backbone, {}), **options})
    save_weights(make(**source_kw), tmp_path / "w.npz")
    target = make(**target_kw)
    before = weights(target.weights)
    with pytest.raises(ValueError, match="^pretrained weights do not fit backbone " + message):
        load_pretrained(target, tmp_path / "w.npz")
    after = weights(target.weights)
    assert all(np.array_equal(v, before[k]) for k, v in after.items())


def test_the_sha256_is_checked(tmp_path):
    source = trained_source()
    path = tmp_path / "w.npz"
    save_weights(source, path)
    right, wrong = sha256(path), hashlib.sha256(b"something else").hexdigest()
    target = build_model("resnet20", 1, 10, 8, True, 0.0, seed=1)
    before = weights(target.weights)
    with pytest.raises(ValueError, match=f"has sha256 {right}, expected {wrong}"):
        load_pretrained(target, f"{path}#sha256={wrong}")
    assert all(np.array_equal(v, before[k]) for k, v in weights(target.weights).items())
    with pytest.raises(ValueError, match="64 hex digits"):
        load_pretrained(target, f"{path}#sha256=abc")
    assert load_pretrained(target, f"{path}#sha256={right.upper()}")
    np.testing.assert_array_equal(target.get_layer("stem.0").kernel.numpy(),
                                  source.get_layer("stem.0").kernel.numpy())


def test_a_pytorch_checkpoint_gets_a_clear_message(tmp_path):
    target = build_model("resnet20", 1, 10, 8, True, 0.0)
    # torch.save's zip format: a pickle and raw storages, no .npy entries
    with zipfile.ZipFile(tmp_path / "w.pt", "w") as archive:
        archive.writestr("w/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("w/data/0", b"\x00" * 16)
    (tmp_path / "legacy.pt").write_bytes(b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19.")
    for name in ("w.pt", "legacy.pt"):
        with pytest.raises(ValueError, match=f"{name} is a PyTorch checkpoint; the tensorflow "
                                             f"trainer reads .npz weights written by a "
                                             f"tensorflow run"):
            load_pretrained(target, tmp_path / name)


def test_a_real_pytorch_checkpoint_gets_the_same_message(tmp_path):
    pytest.importorskip("torch")
    from gridrun.torch._models import build_model as torch_build
    from gridrun.torch._pretrained import save_weights as torch_save

    torch_save(torch_build("resnet20", 1, 10, 8, True, 0.0), tmp_path / "w.pt")
    with pytest.raises(ValueError, match="w.pt is a PyTorch checkpoint"):
        load_pretrained(build_model("resnet20", 1, 10, 8, True, 0.0), tmp_path / "w.pt")


def test_files_that_are_not_weights_are_refused(tmp_path):
    target = build_model("resnet20", 1, 10, 8, True, 0.0)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_pretrained(target, tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("hello")
    np.save(tmp_path / "one.npy", np.zeros(3))
    np.savez(tmp_path / "objects.npz", w=np.array([{"a": 1}], dtype=object))
    np.savez(tmp_path / "empty.npz")
    for name in ("text.npz", "one.npy", "objects.npz", "empty.npz"):
        with pytest.raises(ValueError, match=f"cannot read pretrained weights .*{name}"):
            load_pretrained(target, tmp_path / name)


# ---------------------------------------------------------------- downloads

class _Server:
    """Serves ``files`` (path -> bytes) on 127.0.0.1 in a thread, counting GET requests."""

    def __init__(self, files):
        self.files, self.requests = files, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.mark.parametrize("pinned", [True, False], ids=["sha256", "unpinned"])
def test_a_url_is_downloaded_once_and_then_read_from_the_cache(tmp_path, no_proxy, pinned):
    source = trained_source()
    body = model_bytes(source)
    cache = tmp_path / "cache"
    with _Server({"/models/w.npz": body}) as server:
        url = f"{server.url}/models/w.npz"
        if pinned:
            url += f"#sha256={hashlib.sha256(body).hexdigest()}"
        first = build_model("resnet20", 1, 10, 8, True, 0.0, seed=1)
        second = build_model("resnet20", 1, 10, 8, True, 0.0, seed=2)
        keys = load_pretrained(first, url, cache_dir=cache)
        assert server.requests == ["/models/w.npz"]
        assert load_pretrained(second, url, cache_dir=cache) == keys
        assert server.requests == ["/models/w.npz"]  # the second came from the cache
    cached = list(cache.iterdir())
    assert len(cached) == 1 and cached[0].read_bytes() == body
    src = weights(source.weights)
    for model in (first, second):
        assert all(np.array_equal(v, src[k]) for k, v in weights(base_variables(model)).items())


def test_a_url_with_a_wrong_sha256_is_refused_and_not_cached(tmp_path, no_proxy):
    body = model_bytes(trained_source())
    wrong, cache = "0" * 64, tmp_path / "cache"
    with _Server({"/w.npz": body}) as server:
        target = build_model("resnet20", 1, 10, 8, True, 0.0)
        with pytest.raises(ValueError, match=f"sha256 {hashlib.sha256(body).hexdigest()}, "
                                             f"expected {wrong}"):
            load_pretrained(target, f"{server.url}/w.npz#sha256={wrong}", cache_dir=cache)
        with pytest.raises(ValueError, match="could not download"):
            load_pretrained(target, f"{server.url}/nothing.npz", cache_dir=cache)
        assert len(server.requests) == 2
    assert not cache.exists() or not list(cache.iterdir())


def test_the_default_cache_is_gridrun_cache(tmp_path, monkeypatch, no_proxy):
    monkeypatch.setenv("GRIDRUN_CACHE", str(tmp_path / "env-cache"))
    assert weights_cache_dir() == tmp_path / "env-cache"
    with _Server({"/w.npz": model_bytes(trained_source())}) as server:
        load_pretrained(build_model("resnet20", 1, 10, 8, True, 0.0), f"{server.url}/w.npz")
    assert len(list((tmp_path / "env-cache").iterdir())) == 1
