"""``framework`` in a spec: one framework for every trial, or a factor; validated against
the registry before anything runs."""

from __future__ import annotations

import dataclasses

import pytest

from gridrun import Ablation, Factor
from gridrun.spec import techniques
from gridrun.design.grid import expand, trial_id
from gridrun.spec.ablation import SpecError


def spec(**kw):
    base = dict(name="x", dataset="digits", factors=[Factor("batchnorm", [False, True])],
                seeds=2)
    return Ablation(**{**base, **kw})


def test_every_trial_carries_the_framework():
    assert {t.config["framework"] for t in expand(spec())} == {"torch"}
    assert {t.config["framework"] for t in expand(spec(framework="tensorflow"))} \
        == {"tensorflow"}


def test_torch_trial_ids_are_those_of_runs_made_before_framework_existed():
    t = expand(spec())[0]
    old = {k: v for k, v in t.config.items() if k != "framework"}
    assert t.trial_id == trial_id(old, t.seed)
    tf = expand(spec(framework="tensorflow"))[0]
    assert tf.trial_id != t.trial_id


def test_framework_as_a_factor_crosses_the_grid():
    a = spec(factors=[Factor("framework", ["torch", "tensorflow"]),
                      Factor("batchnorm", [False, True])])
    trials = expand(a)
    assert len(trials) == 2 * 2 * 2
    assert a.frameworks == ("torch", "tensorflow")
    assert sorted({t.levels["framework"] for t in trials}) == ["tensorflow", "torch"]
    assert Ablation.from_dict(a.to_dict()) == a


@pytest.mark.parametrize("kw, message", [
    (dict(fixed={"framework": "tensorflow"}), "set the framework with Ablation(framework=...)"),
    (dict(factors=[Factor("framework", ["torch", "tensorflow"])], framework="tensorflow"),
     "framework is a factor; leave Ablation(framework=...) unset"),
    (dict(framework="keras"), "unknown framework 'keras'; allowed: torch, tensorflow"),
])
def test_bad_framework_settings_are_one_clear_error(kw, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.")):
        spec(**kw)


def test_an_unknown_framework_level_fails_where_the_factor_is_built():
    with pytest.raises(SpecError, match="factor 'framework': unknown level 'jax'"):
        Factor("framework", ["torch", "jax"])


def test_a_technique_one_framework_lacks_is_refused_for_that_framework(monkeypatch):
    only_torch = dataclasses.replace(techniques.get("mixup"), frameworks=("torch",))
    monkeypatch.setitem(techniques.TECHNIQUES, "mixup", only_torch)
    spec(factors=[Factor("mixup", [0.0, 0.2])])  # torch: fine
    with pytest.raises(SpecError, match="'mixup' is not implemented by the tensorflow trainer "
                                        r"\(it is by: torch\)"):
        spec(factors=[Factor("framework", ["torch", "tensorflow"]),
                      Factor("mixup", [0.0, 0.2])])
    with pytest.raises(SpecError, match="not implemented by the tensorflow trainer"):
        spec(framework="tensorflow", fixed={"mixup": 0.2})


def test_the_speed_techniques_are_torch_only_and_leave_tensorflow_configs_alone():
    for name in ("precision", "channels_last", "compile"):
        assert techniques.get(name).frameworks == ("torch",)
    with pytest.raises(SpecError, match="'precision' is not implemented by the tensorflow"):
        spec(framework="tensorflow", fixed={"precision": "bf16"})
    # a tensorflow trial's config holds them at their defaults: the Keras trainer accepts it
    config = expand(spec(framework="tensorflow"))[0].config
    checked = techniques.check_config(config, "tensorflow")
    assert "precision" in config and "precision" not in checked
    with pytest.raises(ValueError, match="'compile' is not implemented by the tensorflow"):
        techniques.check_config({**config, "compile": True}, "tensorflow")
    # and they do not change the ids of trials that leave them alone
    t = expand(spec())[0]
    old = {k: v for k, v in t.config.items()
           if k not in ("framework", "precision", "channels_last", "compile")}
    assert t.trial_id == trial_id(old, t.seed)


def test_a_framework_that_is_not_installed_fails_before_ray_starts(monkeypatch, tmp_path):
    pytest.importorskip("ray")
    import importlib.util
    import sys

    from gridrun import launch

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorflow" else real(name, *a))
    a = spec(factors=[Factor("framework", ["torch", "tensorflow"])])
    started = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    with pytest.raises(SpecError, match=r"framework 'tensorflow' needs tensorflow, which is not "
                                        r"installed: pip install 'gridrun\[tensorflow\]'"):
        launch(a, run_dir=tmp_path / "run", show_progress=False)
    assert started == sys.modules["ray"].is_initialized()
    assert not (tmp_path / "run").exists()  # nothing written
