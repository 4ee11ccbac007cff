"""Orthogonal arrays for grids of any levels: the fractions anchors and fractional designs use.

A fraction of strength t has every combination of levels of any t factors equally often, so
the difference of two levels' means of one factor is clear of every interaction of t - 1 or
fewer factors: strength 3 (resolution IV) keeps each level's contrast with the baseline clear
of two-factor interactions; strength 2 (resolution III) aliases it with them; strength 4
(resolution V) also clears three-factor interactions.

``mixed_fraction(levels, strength)`` builds the smallest array this module knows for the
level counts ``levels`` (one per factor):

- factors are grouped by their number of levels s; a group of a prime s (2, 3, 5, 7) is a
  regular s^(k-p) fraction: k columns over GF(s)^m, every t of them linearly independent
  (``_columns``), run x giving factor j the level ``col_j . x mod s``. Two-level groups of up
  to 11 factors take the minimum-aberration generators of ``gridrun.design.fractional``;
  larger two-level groups and every other s are searched, keeping the fewest short words;
- a group that cannot be fractionated at that strength (too few factors, or an s that is not
  prime) is crossed in full;
- the groups are crossed (every run of one with every run of the others): a product of
  arrays of strength t has strength t, and its aliases never join two groups.

Level 0 of every column is the factor's baseline level (``to_levels``), so the all-baseline
cell is always in the fraction. ``strength``, ``words`` and ``aliases`` are worked out from
the columns; ``measured_strength`` and ``measured_aliases`` recompute them from the runs
alone (the tests compare the two).

    >>> a = mixed_fraction([2, 2, 3, 3, 3, 3], 3)
    >>> a.name, len(a.runs), a.n_cells, a.strength
    ('2^2 × 3^(4-1)', 108, 324, 3)
    >>> mixed_fraction([2, 2, 3, 3, 3], 3).is_full    # 2^2 x 3^3: no smaller strength-3 array
    True
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np

from gridrun.design.fractional import roman

__all__ = ["MixedFraction", "Group", "mixed_fraction", "PRIMES", "MAX_ALIAS_ORDER"]

PRIMES = (2, 3, 5, 7)  # level counts a regular fraction is built for (GF(s) arithmetic)
MAX_ALIAS_ORDER = 3  # aliases list interactions of at most this many factors
_TRIES = 12  # seeded greedy searches per run size; the one with the fewest short words wins


@dataclass(frozen=True)
class Group:
    """The factors with one level count ``s``, as a regular s^(k-p) fraction: ``columns``
    holds, per factor, its coefficient vector over GF(s)^m (m = k - p). A full factorial is
    the k unit vectors (p = 0)."""

    s: int
    factors: tuple[int, ...]  # positions in the fraction's factor list
    columns: tuple[tuple[int, ...], ...]

    @property
    def k(self) -> int:
        return len(self.factors)

    @property
    def m(self) -> int:
        return len(self.columns[0])

    @property
    def p(self) -> int:
        return self.k - self.m

    @property
    def name(self) -> str:
        return f"{self.s}^{self.k}" if self.p == 0 else f"{self.s}^({self.k}-{self.p})"

    @cached_property
    def runs(self) -> np.ndarray:
        """s^m rows, one column per factor of the group, values 0..s-1; the first base
        column changes fastest (as in Yates order)."""
        x = np.array(list(itertools.product(range(self.s), repeat=self.m)))[:, ::-1]
        return (x @ np.array(self.columns).T) % self.s

    @cached_property
    def words(self) -> tuple[tuple[int, ...], ...]:
        """The defining words of up to ``MAX_ALIAS_ORDER + 2`` letters, as coefficient
        vectors over the group's factors (first non-zero coefficient 1): the linear
        dependencies among the columns. Longer words alias nothing ``aliases`` lists."""
        return tuple(_short_words(np.array(self.columns), self.s, MAX_ALIAS_ORDER + 2))

    @cached_property
    def strength(self) -> int:
        """Resolution - 1: the shortest word's length less one (k for a full factorial)."""
        shortest = min((sum(1 for c in w if c) for w in self.words), default=None)
        if shortest is None:
            shortest = _min_word_length(np.array(self.columns), self.s) or self.k + 1
        return shortest - 1


@dataclass(frozen=True)
class MixedFraction:
    """A crossed product of regular fractions, one per level count (see the module doc).

    ``levels`` are the level counts in factor order, ``groups`` the fractions, ``runs`` the
    array (one row per cell, value 0 = baseline level); ``names`` (optional) label factors
    in ``label``, ``describe`` and ``aliases``."""

    levels: tuple[int, ...]
    groups: tuple[Group, ...]
    names: tuple[str, ...] | None = None

    @cached_property
    def runs(self) -> tuple[tuple[int, ...], ...]:
        out = np.zeros((self.n_runs, len(self.levels)), dtype=int)
        reps = self.n_runs
        for g in self.groups:  # the first group changes slowest, as an outer loop
            reps //= len(g.runs)
            block = np.repeat(g.runs, reps, axis=0)
            out[:, list(g.factors)] = np.tile(block, (self.n_runs // len(block), 1))
        return tuple(map(tuple, out.tolist()))

    @property
    def n_runs(self) -> int:
        return math.prod(len(g.runs) for g in self.groups)

    @property
    def n_cells(self) -> int:
        return math.prod(self.levels)

    @property
    def is_full(self) -> bool:
        return all(g.p == 0 for g in self.groups)

    @property
    def strength(self) -> int:
        """The product's strength: a group crossed in full balances any of its columns, so
        only the fractionated groups bound it (every factor, when none is)."""
        return min((g.strength for g in self.groups if g.p), default=len(self.levels))

    @property
    def resolution(self) -> int:
        return self.strength + 1

    @property
    def name(self) -> str:
        return " × ".join(g.name for g in self.groups)

    @property
    def crossed(self) -> tuple[int, ...]:
        """Positions of the factors whose group is crossed in full."""
        return tuple(i for g in self.groups if g.p == 0 for i in g.factors)

    def named(self, names: Sequence[str]) -> MixedFraction:
        names = tuple(names)
        if len(names) != len(self.levels) or len(set(names)) != len(names):
            raise ValueError(f"names must be {len(self.levels)} distinct strings, one per "
                             f"factor, got {list(names)!r}")
        return MixedFraction(self.levels, self.groups, names)

    def label(self, factors: Sequence[int]) -> str:
        """An interaction by factor names, e.g. (0, 2) -> 'dropout×optimizer'."""
        names = self.names or tuple(_letter(i) for i in range(len(self.levels)))
        return "×".join(names[i] for i in sorted(factors))

    def generators(self) -> list[str]:
        """Each generated factor as a combination of its group's base factors, e.g.
        'D = A+B+2C (mod 3)' or 'E = A×B×C' for two levels."""
        out = []
        for g in self.groups:
            base = [g.factors[g.columns.index(u)] for u in _units(g.m)]
            for j, col in zip(g.factors, g.columns):
                if j in base:
                    continue
                terms = [(c, base[b]) for b, c in enumerate(col) if c]
                if g.s == 2:  # in -1/+1 coding, -1 at the baseline: a sign for even words
                    rhs = "×".join(self.label([i]) for _, i in terms)
                    sign = "-" if len(terms) % 2 == 0 else ""
                    out.append(f"{self.label([j])}={sign}{rhs}")
                else:
                    rhs = "+".join(("" if c == 1 else str(c)) + self.label([i]) for c, i in terms)
                    out.append(f"{self.label([j])}={rhs} (mod {g.s})")
        return out

    def aliases(self) -> dict[tuple[int, ...], tuple[tuple[int, ...], ...]]:
        """Every main effect (i,) and two-factor interaction (i, j) -> the interactions of
        at most ``MAX_ALIAS_ORDER`` factors its contrasts share, shortest first."""
        own = [_group_aliases(g) for g in self.groups]
        where = {i: gi for gi, g in enumerate(self.groups) for i in g.factors}
        out = {}
        for i in range(len(self.levels)):
            out[(i,)] = own[where[i]].get((i,), ())
        for i, j in itertools.combinations(range(len(self.levels)), 2):
            if where[i] == where[j]:
                found = set(own[where[i]].get((i, j), ()))
            else:  # across groups: each side's own aliases, joined
                left = {(i,), *own[where[i]].get((i,), ())}
                right = {(j,), *own[where[j]].get((j,), ())}
                found = {tuple(sorted(set(a) | set(b))) for a in left for b in right}
                found.discard((i, j))
            out[(i, j)] = _sorted_effects(e for e in found if len(e) <= MAX_ALIAS_ORDER)
        return out

    def describe(self) -> str:
        """A few lines for ``gridrun plan``: the array, its strength, generators, aliases."""
        lines = [f"{self.name}: {self.n_runs} of {self.n_cells} cells, strength "
                 f"{self.strength} (resolution {roman(self.resolution)})"]
        if self.names:
            lines.append("factors: " + ", ".join(
                f"{_letter(i)} = {n} ({s} levels)" for i, (n, s) in enumerate(zip(self.names,
                                                                                self.levels))))
        gens = self.generators()
        if gens:
            lines.append("generators: " + ", ".join(gens))
        if self.crossed:
            lines.append("crossed in full: " + ", ".join(self.label([i]) for i in self.crossed))
        lines.append(f"aliases (interactions of up to {MAX_ALIAS_ORDER} factors):")
        for effect, others in self.aliases().items():
            if len(effect) == 1 or others:
                chain = " = ".join(self.label(e) for e in (effect, *others))
                lines.append("  " + (chain if others else f"{chain} (clear)"))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"design": self.name, "n_runs": self.n_runs, "n_cells": self.n_cells,
                "strength": self.strength, "levels": list(self.levels),
                "factors": list(self.names) if self.names else None,
                "generators": self.generators(),
                "crossed": [self.label([i]) for i in self.crossed],
                "aliases": {self.label(e): [self.label(o) for o in others]
                            for e, others in self.aliases().items() if others}}

    # -- the same facts recomputed from the runs alone ---------------------------------
    def measured_strength(self) -> int:
        """The largest t such that every t factors show every level combination equally
        often in ``runs`` (counted, not derived from the columns)."""
        runs = np.array(self.runs)
        t = 0
        for size in range(1, len(self.levels) + 1):
            for cols in itertools.combinations(range(len(self.levels)), size):
                counts = np.unique(runs[:, cols], axis=0, return_counts=True)[1]
                if len(counts) != math.prod(self.levels[c] for c in cols) \
                        or counts.min() != counts.max():
                    return t
            t = size
        return t

    def measured_aliases(self) -> dict[tuple[int, ...], tuple[tuple[int, ...], ...]]:
        """``aliases`` recomputed from the runs: two effects share a contrast when their
        orthonormal contrast columns are not orthogonal over the runs."""
        runs = np.array(self.runs)
        k = len(self.levels)
        basis = [_contrast_basis(runs[:, i], self.levels[i]) for i in range(k)]
        effects = [e for r in range(1, MAX_ALIAS_ORDER + 1)
                   for e in itertools.combinations(range(k), r)]
        cols = {e: _product_basis([basis[i] for i in e]) for e in effects}
        out = {}
        for e in [e for e in effects if len(e) <= 2]:
            out[e] = _sorted_effects(o for o in effects if o != e
                                     and np.abs(cols[e].T @ cols[o]).max() > 1e-9)
        return out


def mixed_fraction(levels: Sequence[int], strength: int) -> MixedFraction:
    """The smallest array of at least ``strength`` (2, 3 or 4) for factors with these level
    counts, as described in the module docstring. A full factorial when nothing smaller
    reaches the strength.

        >>> mixed_fraction([3, 3, 3, 3], 3).generators()
        ['D=A+B+C (mod 3)']
        >>> mixed_fraction([2] * 16, 3).name
        '2^(16-11)'
    """
    levels = tuple(levels)
    bad = [s for s in levels if isinstance(s, bool) or not isinstance(s, int) or s < 2]
    if not levels or bad:
        raise ValueError(f"levels must be level counts >= 2, one per factor, got {levels!r}")
    if isinstance(strength, bool) or strength not in (2, 3, 4):
        raise ValueError(f"strength must be 2, 3 or 4 (resolution III, IV or V), "
                         f"got {strength!r}")
    by_s: dict[int, list[int]] = {}
    for i, s in enumerate(levels):
        by_s.setdefault(s, []).append(i)
    groups = tuple(Group(s, tuple(idx), _columns(s, len(idx), strength))
                   for s, idx in sorted(by_s.items()))
    return MixedFraction(levels, groups)


def to_levels(value: int, baseline: int, s: int) -> int:
    """The level index a run's value stands for: 0 is the baseline level, then the others
    in their order.

    >>> [to_levels(v, 1, 3) for v in range(3)]
    [1, 0, 2]
    """
    others = [lv for lv in range(s) if lv != baseline]
    return baseline if value == 0 else others[value - 1]


# -- building the columns --------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _columns(s: int, k: int, strength: int) -> tuple[tuple[int, ...], ...]:
    """k coefficient vectors over GF(s)^m, every ``strength`` of them independent, for the
    smallest m found; the k unit vectors (a full factorial) when no m < k works."""
    if s in PRIMES and k > strength:
        if s == 2:
            cols = _catalog_columns(k, strength)
            if cols is not None:
                return cols
        for m in range(strength, k):
            cols = _search(s, k, m, strength)
            if cols is not None:
                return cols
    return tuple(_units(k))


def _catalog_columns(k: int, strength: int):
    """The minimum-aberration two-level fraction of ``gridrun.design.fractional``, as
    columns; None beyond its catalogue."""
    from gridrun.design.fractional import MAX_FACTORS, fractional_plan, LETTERS

    if k > MAX_FACTORS or strength + 1 not in (3, 4, 5):
        return None
    plan = fractional_plan(k, strength + 1)
    m = k - plan.p
    cols = list(_units(m))
    for g in plan.generators:
        word = g.split("=")[1]
        cols.append(tuple(1 if LETTERS[b] in word else 0 for b in range(m)))
    return tuple(cols)


def _search(s: int, k: int, m: int, t: int):
    """k columns over GF(s)^m (the m unit vectors first) with every t of them linearly
    independent, by seeded greedy searches; of those found, the one with the fewest words
    of length t + 1, then t + 2. None when no try finds k."""
    units = list(_units(m))
    cands = [v for v in _points(s, m) if sum(1 for c in v if c) >= t]  # lighter ones alias
    if len(units) + len(cands) < k:
        return None
    rng = random.Random(f"{s}-{k}-{m}-{t}")
    best, best_key = None, None
    for attempt in range(_TRIES):
        order = sorted(cands, key=lambda v: (-sum(1 for c in v if c), v))
        if attempt:
            rng.shuffle(order)
        cols = _greedy(s, units, order, k, t)
        if cols is None:
            continue
        key = tuple(sum(1 for w in _short_words(np.array(cols), s, t + 2)
                        if sum(1 for c in w if c) == n) for n in (t + 1, t + 2))
        if best_key is None or key < best_key:
            best, best_key = tuple(cols), key
        if key == (0, 0):
            break
    return best


def _greedy(s, units, order, k, t):
    cols = list(units)
    forbidden = set()
    for sub in _subsets_upto(len(cols), t - 1):
        forbidden |= _spans(s, [cols[i] for i in sub])
    for v in order:
        if len(cols) == k:
            break
        if v in forbidden:
            continue
        for sub in _subsets_upto(len(cols), t - 2):  # v with t - 2 others spans new points
            forbidden |= _spans(s, [v, *(cols[i] for i in sub)])
        cols.append(v)
    return cols if len(cols) == k else None


def _subsets_upto(n: int, r: int):
    for size in range(0, r + 1):
        yield from itertools.combinations(range(n), size)


def _spans(s: int, vectors) -> set:
    """The normalized non-zero combinations of ``vectors`` that use every one of them."""
    out = set()
    if not vectors:
        return out
    for coefs in itertools.product(range(1, s), repeat=len(vectors) - 1):
        v = np.array(vectors[0])
        for c, u in zip(coefs, vectors[1:]):
            v = v + c * np.array(u)
        out.add(_normalize(v % s, s))
    return out


def _points(s: int, m: int):
    """The points of PG(m-1, s): non-zero vectors whose first non-zero entry is 1."""
    for v in itertools.product(range(s), repeat=m):
        nz = [c for c in v if c]
        if nz and nz[0] == 1:
            yield tuple(v)


def _units(m: int):
    return [tuple(1 if b == a else 0 for b in range(m)) for a in range(m)]


def _normalize(v, s: int) -> tuple[int, ...]:
    nz = next(c for c in v if c)
    inv = pow(int(nz), -1, s)
    return tuple(int(c * inv % s) for c in v)


# -- words and aliases -----------------------------------------------------------------------
def _short_words(cols: np.ndarray, s: int, max_len: int):
    """Every defining word of at most ``max_len`` letters: coefficient vectors c (first
    non-zero 1) with sum_j c_j cols_j = 0 over GF(s)."""
    k = len(cols)
    if s == 2:  # columns as bit masks: a word is a subset whose XOR is zero
        masks = [int("".join(map(str, c[::-1])), 2) for c in np.asarray(cols).tolist()]
        for size in range(1, min(max_len, k) + 1):
            for sub in itertools.combinations(range(k), size):
                acc = 0
                for j in sub:
                    acc ^= masks[j]
                if not acc:
                    yield tuple(1 if j in sub else 0 for j in range(k))
        return
    rows = [tuple(c) for c in np.asarray(cols).tolist()]
    for size in range(1, min(max_len, k) + 1):
        for sub in itertools.combinations(range(k), size):
            for coefs in itertools.product(range(1, s), repeat=size - 1):
                c = (1, *coefs)
                if all(sum(cj * rows[j][b] for cj, j in zip(c, sub)) % s == 0
                       for b in range(len(rows[0]))):
                    word = [0] * k
                    for j, cj in zip(sub, c):
                        word[j] = cj
                    yield tuple(word)


def _min_word_length(cols: np.ndarray, s: int) -> int | None:
    """The length of the shortest defining word (None for a full factorial)."""
    k, m = cols.shape
    if k == m:
        return None
    for w in _short_words(cols, s, k):
        return sum(1 for c in w if c)
    return None


def _group_aliases(g: Group) -> dict:
    """Within one group: main effects and two-factor interactions -> their aliases."""
    out = {}
    words = [np.array(w) for w in g.words]
    for r in (1, 2):
        for sub in itertools.combinations(range(g.k), r):
            found = set()
            for coefs in itertools.product(range(1, g.s), repeat=r):
                e = np.zeros(g.k, dtype=int)
                e[list(sub)] = coefs
                for w in words:
                    for lam in range(1, g.s):
                        alias = (e + lam * w) % g.s
                        support = tuple(int(np.flatnonzero(alias)[i])
                                        for i in range(int((alias != 0).sum())))
                        if support and support != sub and len(support) <= MAX_ALIAS_ORDER:
                            found.add(tuple(g.factors[j] for j in support))
            out[tuple(g.factors[j] for j in sub)] = _sorted_effects(found)
    return out


def _sorted_effects(effects) -> tuple[tuple[int, ...], ...]:
    return tuple(sorted(set(effects), key=lambda e: (len(e), e)))


def _contrast_basis(values: np.ndarray, s: int) -> np.ndarray:
    """Orthonormal contrasts of one factor's levels over the full set of levels (s - 1
    columns), evaluated at ``values``."""
    q, _ = np.linalg.qr(np.column_stack([np.ones(s), np.eye(s)[:, 1:]]))
    return q[:, 1:][values]


def _product_basis(parts) -> np.ndarray:
    out = parts[0]
    for p in parts[1:]:
        out = np.einsum("ni,nj->nij", out, p).reshape(len(out), -1)
    return out


def _letter(i: int) -> str:
    letters = "ABCDEFGHJKLMNOPQRSTUVWXYZ"
    return letters[i] if i < len(letters) else f"F{i + 1}"
