"""2^(k-p) fractional plans checked against textbook answers and brute-force searches."""

import doctest
import itertools
import json

import numpy as np
import pytest

from gridrun.design import fractional as _fractional
from gridrun.design.fractional import (LETTERS, MAX_ALIAS_ORDER, FractionalPlan, fractional_plan,
                                       plan_from_generators)

KS = range(2, 12)
RESOLUTIONS = (3, 4, 5)
POPCOUNT = np.array([bin(i).count("1") for i in range(256)])


# --- helpers: columns, word masks, brute-force searches ---------------------------------

def column(plan: FractionalPlan, word: str) -> np.ndarray:
    """The +1/-1 contrast column of a word (product of its factors' columns) over the runs."""
    runs = np.array(plan.runs)
    return np.prod([runs[:, LETTERS.index(c)] for c in word], axis=0)


def word_lengths(base_masks, m: int) -> list[int]:
    """Lengths of every defining word of the design whose added columns are base_masks."""
    lengths = []
    for r in range(1, len(base_masks) + 1):
        for subset in itertools.combinations(base_masks, r):
            x = 0
            for mask in subset:
                x ^= mask
            lengths.append(r + bin(x).count("1"))
    return lengths


def fraction_exists(k: int, m: int, resolution: int) -> bool:
    """Whether some regular 2^(k-(k-m)) design (2^m runs) has at least this resolution.

    WLOG the first m factors are the base; each added factor is a base word of at least
    resolution-1 letters; backtrack over increasing choices, keeping the words' lengths.
    """
    if m < 1:
        return False
    cands = [v for v in range(1, 2 ** m) if bin(v).count("1") >= max(2, resolution - 1)]

    def extend(start: int, group: list[tuple[int, int]], need: int) -> bool:
        if need == 0:
            return True
        for i in range(start, len(cands)):
            c = cands[i]
            new = [(x ^ c, n + 1) for x, n in group]
            if all(n + bin(x).count("1") >= resolution for x, n in new):
                if extend(i + 1, group + new, need - 1):
                    return True
        return False

    return extend(0, [(0, 0)], k - m)


def best_wlp(k: int, p: int, resolution: int) -> np.ndarray:
    """The lexicographically smallest word-length pattern (A_1..A_k) of any 2^(k-p) design of
    at least this resolution, by exhaustive search (vectorised over generator choices)."""
    m = k - p
    cands = [v for v in range(1, 2 ** m) if bin(v).count("1") >= max(2, resolution - 1)]
    combos = np.array(list(itertools.combinations(cands, p)), dtype=np.int64).reshape(-1, p)
    wlp = np.zeros((len(combos), k + 1), dtype=np.int64)
    rows = np.arange(len(combos))
    for s in range(1, 2 ** p):
        picked = [j for j in range(p) if s >> j & 1]
        x = np.bitwise_xor.reduce(combos[:, picked], axis=1)
        np.add.at(wlp, (rows, POPCOUNT[x] + len(picked)), 1)
    order = np.lexsort(wlp[:, ::-1].T)  # last key is primary: sort by A_1, then A_2, ...
    return wlp[order[0], 1:]


def plan_wlp(plan: FractionalPlan) -> np.ndarray:
    wlp = np.zeros(plan.k + 1, dtype=np.int64)
    for word in plan.defining_relation:
        wlp[len(word)] += 1
    return wlp[1:]


# --- known answers ---------------------------------------------------------------------

def test_half_fraction_of_five_factors_is_resolution_v():
    plan = fractional_plan(5, 5)
    assert (plan.k, plan.p, len(plan.runs)) == (5, 1, 16)
    assert plan.generators == ("E=ABCD",)
    assert plan.defining_relation == ("ABCDE",)
    assert plan.resolution == 5
    assert plan.name == "2^(5-1) resolution V"
    for effect, others in plan.aliases.items():  # no ME/2FI aliased with another ME/2FI
        assert all(len(w) >= 3 for w in others), (effect, others)
    assert plan.aliases["A"] == ()
    assert plan.aliases["AB"] == ("CDE",)


def test_saturated_seven_factor_design_is_resolution_iii():
    plan = fractional_plan(7, 3)
    assert (plan.k, plan.p, len(plan.runs)) == (7, 4, 8)
    assert plan.generators == ("D=AB", "E=AC", "F=BC", "G=ABC")
    assert len(plan.defining_relation) == 15
    assert min(map(len, plan.defining_relation)) == 3 == plan.resolution
    assert plan.defining_relation[:7] == ("ABD", "ACE", "AFG", "BCF", "BEG", "CDG", "DEF")
    assert plan.defining_relation[-1] == "ABCDEFG"
    assert plan.aliases["A"] == ("BD", "CE", "FG", "BCG", "BEF", "CDF", "DEG")
    assert plan.aliases["AB"][0] == "D"
    assert (column(plan, "A") == column(plan, "BD")).all()


@pytest.mark.parametrize("k, resolution, generators", [
    (3, 3, ("C=AB",)),
    (4, 4, ("D=ABC",)),
    (5, 5, ("E=ABCD",)),
    (6, 4, ("E=ABC", "F=BCD")),
    (6, 5, ("F=ABCDE",)),
    (7, 3, ("D=AB", "E=AC", "F=BC", "G=ABC")),
    (7, 4, ("E=ABC", "F=BCD", "G=ACD")),
    (8, 4, ("E=BCD", "F=ACD", "G=ABC", "H=ABD")),
    (9, 4, ("F=BCDE", "G=ACDE", "H=ABDE", "J=ABCE")),
    (11, 4, ("F=ABC", "G=BCD", "H=CDE", "J=ACD", "K=ADE", "L=BDE")),
])
def test_tabled_generators_are_returned(k, resolution, generators):
    assert fractional_plan(k, resolution).generators == generators


@pytest.mark.parametrize("k, resolution", [(2, 3), (2, 5), (3, 4), (3, 5), (4, 5)])
def test_full_factorial_when_no_fraction_reaches_the_resolution(k, resolution):
    plan = fractional_plan(k, resolution)
    assert plan.is_full and plan.p == 0 and len(plan.runs) == 2 ** k
    assert plan.generators == plan.defining_relation == ()
    assert plan.resolution == k + 1
    assert all(others == () for others in plan.aliases.values())
    assert len(set(plan.runs)) == 2 ** k
    assert "full factorial" in plan.describe()


# --- properties of every plan ----------------------------------------------------------

@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("k", KS)
def test_every_plan_is_a_valid_smallest_design(k, resolution):
    plan = fractional_plan(k, resolution)
    runs = np.array(plan.runs)
    assert runs.shape == (2 ** (k - plan.p), k)
    assert set(np.unique(runs)) == {-1, 1}
    assert (runs.sum(axis=0) == 0).all()                             # balanced
    assert (runs.T @ runs == len(runs) * np.eye(k)).all()            # orthogonal main effects
    assert len(set(plan.runs)) == len(plan.runs)                     # no repeated run
    for word in plan.defining_relation:                              # I = word on every run
        assert (column(plan, word) == 1).all(), word
    assert plan.resolution == min(map(len, plan.defining_relation), default=k + 1)
    assert plan.is_full or plan.resolution >= resolution
    # minimal: the search finds this run size but nothing with half as many runs
    assert fraction_exists(k, k - plan.p, resolution)
    assert not fraction_exists(k, k - plan.p - 1, resolution)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("k", KS)
def test_aliases_are_exactly_the_equal_columns(k, resolution):
    plan = fractional_plan(k, resolution)
    words = ["".join(c) for r in range(1, MAX_ALIAS_ORDER + 1)
             for c in itertools.combinations(LETTERS[:k], r)]
    columns = {w: column(plan, w) for w in words}
    assert list(plan.aliases) == words[: k + k * (k - 1) // 2]  # every ME and 2FI, in order
    for effect, others in plan.aliases.items():
        equal = [w for w in words if w != effect and (columns[w] == columns[effect]).all()]
        assert sorted(others) == sorted(equal), effect
        assert list(others) == sorted(others, key=lambda w: (len(w), w))


@pytest.mark.parametrize("k, p", sorted(_fractional._CATALOG))
def test_catalogue_designs_have_minimum_aberration(k, p):
    plan = plan_from_generators(k, _fractional._CATALOG[k, p])
    assert plan.p == p
    assert (plan_wlp(plan) == best_wlp(k, p, plan.resolution)).all()


# --- names, rendering, JSON -------------------------------------------------------------

def test_named_plan_prints_aliases_in_factor_names():
    names = ["batchnorm", "optimizer", "dropout"]
    plan = fractional_plan(3, 3).named(names)
    assert plan.names == tuple(names) and plan.runs == fractional_plan(3, 3).runs
    assert plan.label("AB") == "batchnorm×optimizer"
    text = plan.describe()
    assert "factors: A = batchnorm, B = optimizer, C = dropout" in text
    assert "dropout = batchnorm×optimizer" in text.splitlines()[-1]
    assert fractional_plan(3, 3).describe(names) == text
    with pytest.raises(ValueError, match="not a word"):
        plan.label("AZ")


def test_describe_lists_design_generators_relation_and_chains():
    text = fractional_plan(5, 5).describe()
    assert text.splitlines()[:3] == ["2^(5-1) resolution V: 5 factors, 16 runs",
                                     "generators: E = ABCD",
                                     "defining relation: I = ABCDE"]
    assert "  A (clear)" in text and "  AB = CDE" in text
    chains = fractional_plan(7, 3).describe().splitlines()[4:]
    assert len(chains) == 7  # each chain printed once: 7 main effects absorb all 21 2FIs
    assert chains[0] == "  A = BD = CE = FG = BCG = BEF = CDF = DEG"


def test_to_dict_is_json_and_complete():
    plan = fractional_plan(6, 4).named(list("uvwxyz"))
    d = json.loads(json.dumps(plan.to_dict()))
    assert d["design"] == "2^(6-2) resolution IV" and d["n_runs"] == 16
    assert d["generators"] == ["E=ABC", "F=BCD"]
    assert d["defining_relation"] == ["ABCE", "ADEF", "BCDF"]
    assert d["factors"]["E"] == "y" and d["aliases"]["AB"] == ["CE"]
    assert [tuple(r) for r in d["runs"]] == list(plan.runs)
    assert fractional_plan(6, 4).to_dict()["factors"] is None


def test_plans_are_frozen_and_comparable():
    plan = fractional_plan(4, 4)
    assert plan == fractional_plan(4, 4) and hash(plan) == hash(fractional_plan(4, 4))
    with pytest.raises(AttributeError):
        plan.k = 5
    with pytest.raises(TypeError):
        plan.aliases["A"] = ()


# --- invalid input ----------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 0, -3, 12, 2.0, "5", True, None])
def test_bad_k_is_rejected(k):
    with pytest.raises(ValueError, match=r"k \(the number of two-level factors\).*2 to 11"):
        fractional_plan(k, 3)


@pytest.mark.parametrize("resolution", [2, 6, 0, "V", 4.0, None, True])
def test_bad_resolution_is_rejected(resolution):
    with pytest.raises(ValueError, match=r"resolution must be 3, 4 or 5.*got"):
        fractional_plan(5, resolution)


@pytest.mark.parametrize("names", [["a", "b"], ["a", "b", "a"], ["a", "", "c"],
                                   ["a", 2, "c"]])
def test_bad_names_are_rejected(names):
    with pytest.raises(ValueError, match="names"):
        fractional_plan(3, 3).named(names)
    with pytest.raises(ValueError, match="names"):
        fractional_plan(3, 3).describe(names)


@pytest.mark.parametrize("generators", [["D=ABE"], ["E=ABC"], ["D"], ["=AB"], ["D=AAB"],
                                        ["DE=AB"], ["D=AB", "D=AC"]])
def test_bad_generators_are_rejected(generators):
    with pytest.raises(ValueError, match="generator"):
        plan_from_generators(4 if len(generators) == 1 else 5, generators)


def test_custom_generators_work():
    plan = plan_from_generators(7, ["F=ABCD", "G=ABDE"])  # textbook 2^(7-2) IV
    assert plan.defining_relation == ("CEFG", "ABCDF", "ABDEG")
    assert plan.resolution == 4 and len(plan.runs) == 32


def test_module_examples_run():
    assert doctest.testmod(_fractional).failed == 0
