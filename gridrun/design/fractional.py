"""Two-level regular fractional factorial designs: the smallest 2^(k-p) of a given resolution.

``fractional_plan(k, resolution)`` picks, from a catalogue of minimum-aberration designs
(Montgomery, *Design and Analysis of Experiments*, table of 2^(k-p) designs; NIST/SEMATECH
e-Handbook 5.3.3.4.7), the regular fraction with the fewest runs whose resolution is at least
the one asked for, and works out its defining relation, resolution and aliases.

Conventions:

- Factors are lettered A, B, C, ... in the given order, skipping I (which names the identity
  in "I = ABCDE"), as in the textbooks: the 9th, 10th and 11th factors are J, K and L.
- The first k-p letters are the base factors, in standard (Yates) order: A alternates
  fastest, starting at -1. Each generated factor is the product of its generator's letters.
- When no fraction reaches the resolution (2 factors; 3 factors at IV or V; 4 at V), the plan
  is the full 2^k factorial: p = 0, no generators, nothing aliased, ``is_full`` is True and
  ``resolution`` is k + 1 (no word of k or fewer letters is confounded). A full factorial
  meets any requested resolution.
- ``aliases`` and the alias chains in ``describe()`` list words of up to
  ``MAX_ALIAS_ORDER`` = 3 letters (main effects, 2- and 3-factor interactions); longer
  interactions are taken as negligible, as usual.

    >>> plan = fractional_plan(5, 5)
    >>> plan.name, plan.generators, plan.defining_relation
    ('2^(5-1) resolution V', ('E=ABCD',), ('ABCDE',))
    >>> len(plan.runs), plan.runs[0]
    (16, (-1, -1, -1, -1, 1))
    >>> fractional_plan(3, 3).named(["batchnorm", "optimizer", "dropout"]).label("AB")
    'batchnorm×optimizer'
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping, Sequence

__all__ = ["FractionalPlan", "fractional_plan", "plan_from_generators", "MAX_ALIAS_ORDER"]

LETTERS = "ABCDEFGHJKLMNOPQRSTUVWXYZ"  # no I: it is the identity in a defining relation
MAX_ALIAS_ORDER = 3  # aliases list words of at most this many letters
RESOLUTIONS = (3, 4, 5)

# Minimum-aberration generators, (k, p) -> generators. Only the fractions that are the
# smallest for some k and resolution 3-5 are listed; fractional_plan takes the largest p whose
# computed resolution is enough. 2^(11-4) extends the tabled 2^(10-3) by L=ABCDEFG; its
# 6 five-letter words are the fewest possible (the tests check minimum aberration).
_CATALOG: dict[tuple[int, int], tuple[str, ...]] = {
    (3, 1): ("C=AB",),
    (4, 1): ("D=ABC",),
    (5, 1): ("E=ABCD",),
    (5, 2): ("D=AB", "E=AC"),
    (6, 1): ("F=ABCDE",),
    (6, 2): ("E=ABC", "F=BCD"),
    (6, 3): ("D=AB", "E=AC", "F=BC"),
    (7, 1): ("G=ABCDEF",),
    (7, 3): ("E=ABC", "F=BCD", "G=ACD"),
    (7, 4): ("D=AB", "E=AC", "F=BC", "G=ABC"),
    (8, 2): ("G=ABCD", "H=ABEF"),
    (8, 4): ("E=BCD", "F=ACD", "G=ABC", "H=ABD"),
    (9, 2): ("H=ACDFG", "J=BCEFG"),
    (9, 4): ("F=BCDE", "G=ACDE", "H=ABDE", "J=ABCE"),
    (9, 5): ("E=ABC", "F=BCD", "G=ACD", "H=ABD", "J=ABCD"),
    (10, 3): ("H=ABCG", "J=BCDE", "K=ACDF"),
    (10, 5): ("F=ABCD", "G=ABCE", "H=ABDE", "J=ACDE", "K=BCDE"),
    (10, 6): ("E=ABC", "F=BCD", "G=ACD", "H=ABD", "J=ABCD", "K=AB"),
    (11, 4): ("H=ABCG", "J=BCDE", "K=ACDF", "L=ABCDEFG"),
    (11, 6): ("F=ABC", "G=BCD", "H=CDE", "J=ACD", "K=ADE", "L=BDE"),
    (11, 7): ("E=ABC", "F=BCD", "G=ACD", "H=ABD", "J=ABCD", "K=AB", "L=AC"),
}
MAX_FACTORS = max(k for k, _ in _CATALOG)


@dataclass(frozen=True)
class FractionalPlan:
    """A regular two-level 2^(k-p) design, its defining relation and aliases.

    Build one with ``fractional_plan`` or ``plan_from_generators``. ``runs`` holds 2^(k-p)
    rows of +1/-1, one entry per factor; ``aliases`` maps every main effect and two-factor
    interaction ("A", "AB") to the other words of up to ``MAX_ALIAS_ORDER`` letters it is
    confounded with, shortest first. ``named(names)`` attaches factor names, which
    ``label``, ``describe`` and ``to_dict`` then use (``describe(names)`` is a shortcut).

        >>> plan = fractional_plan(7, 3)
        >>> plan.aliases["A"][:3]
        ('BD', 'CE', 'FG')
    """

    k: int
    p: int
    generators: tuple[str, ...]
    defining_relation: tuple[str, ...]
    resolution: int
    runs: tuple[tuple[int, ...], ...]
    aliases: Mapping[str, tuple[str, ...]] = field(compare=False, repr=False)
    names: tuple[str, ...] | None = None

    @property
    def letters(self) -> tuple[str, ...]:
        return tuple(LETTERS[: self.k])

    @property
    def is_full(self) -> bool:
        return self.p == 0

    @property
    def name(self) -> str:
        if self.is_full:
            return f"2^{self.k} full factorial"
        return f"2^({self.k}-{self.p}) resolution {roman(self.resolution)}"

    def named(self, names: Sequence[str]) -> FractionalPlan:
        """The same plan with factor names for A, B, C, ... (one distinct string per factor)."""
        names = tuple(names)
        bad = [n for n in names if not isinstance(n, str) or not n]
        if bad:
            raise ValueError(f"factor names must be non-empty strings, got {bad[0]!r}")
        if len(names) != self.k or len(set(names)) != self.k:
            raise ValueError(f"names must be {self.k} distinct strings, one per factor, "
                             f"got {list(names)!r}")
        return replace(self, names=names)

    def label(self, word: str) -> str:
        """A word in factor names, e.g. 'BD' -> 'batchnorm×optimizer' (letters if unnamed)."""
        if self.names is None:
            return word
        lookup = dict(zip(self.letters, self.names))
        try:
            return "×".join(lookup[letter] for letter in word)
        except KeyError:
            raise ValueError(f"{word!r} is not a word over the letters "
                             f"{''.join(self.letters)}") from None

    def describe(self, names: Sequence[str] | None = None) -> str:
        """A few lines for the plan-time log: design, generators, defining relation, aliases.

        ``names`` (optional) labels the factors: ``describe(names)`` is
        ``named(names).describe()``.
        """
        if names is not None:
            return self.named(names).describe()
        lines = [f"{self.name}: {self.k} factors, {len(self.runs)} runs"]
        if self.names is not None:
            lines.append("factors: " + ", ".join(
                f"{letter} = {name}" for letter, name in zip(self.letters, self.names)))
        if self.is_full:
            lines.append("no aliasing: every effect can be estimated")
            return "\n".join(lines)
        lines.append("generators: " + ", ".join(g.replace("=", " = ") for g in self.generators))
        lines.append("defining relation: I = " + " = ".join(self.defining_relation))
        lines.append(f"alias chains (words up to {MAX_ALIAS_ORDER} letters):")
        lines += ["  " + line for line in self._alias_chains()]
        return "\n".join(lines)

    def _alias_chains(self) -> list[str]:
        # Each chain once, led by its first main effect or 2FI in the order of `aliases`.
        seen, chains = set(), []
        for effect, others in self.aliases.items():
            if effect in seen:
                continue
            seen.update([effect, *others])
            if others:
                chains.append(" = ".join(self.label(w) for w in (effect, *others)))
            else:
                chains.append(f"{self.label(effect)} (clear)")
        return chains

    def to_dict(self) -> dict:
        """Plain JSON-ready data (for run.json)."""
        return {
            "design": self.name,
            "k": self.k,
            "p": self.p,
            "n_runs": len(self.runs),
            "resolution": self.resolution,
            "full": self.is_full,
            "factors": (dict(zip(self.letters, self.names)) if self.names is not None
                        else None),
            "generators": list(self.generators),
            "defining_relation": list(self.defining_relation),
            "max_alias_order": MAX_ALIAS_ORDER,
            "aliases": {effect: list(others) for effect, others in self.aliases.items()},
            "runs": [list(row) for row in self.runs],
        }


def fractional_plan(k: int, resolution: int) -> FractionalPlan:
    """The smallest minimum-aberration 2^(k-p) fraction of at least ``resolution``.

    ``k`` is the number of two-level factors (2 to 11), ``resolution`` is 3, 4 or 5
    (III, IV, V). When no fraction is good enough the full 2^k factorial is returned.

        >>> [fractional_plan(7, r).name for r in (3, 4, 5)]
        ['2^(7-4) resolution III', '2^(7-3) resolution IV', '2^(7-1) resolution VII']
        >>> fractional_plan(3, 4).name
        '2^3 full factorial'
    """
    _check_k(k, high=MAX_FACTORS)
    if isinstance(resolution, bool) or not isinstance(resolution, int) \
            or resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be 3, 4 or 5 (III, IV, V), got {resolution!r}")
    for p in sorted((p for kk, p in _CATALOG if kk == k), reverse=True):
        plan = plan_from_generators(k, _CATALOG[k, p])
        if plan.resolution >= resolution:
            return plan
    return plan_from_generators(k, ())


def plan_from_generators(k: int, generators: Sequence[str]) -> FractionalPlan:
    """The 2^(k-p) design with these p generators, e.g. ``("E=ABC", "F=BCD")`` for k=6.

    The generated letters are the last p of the k; their words use only the first k-p.

        >>> plan_from_generators(4, ["D=ABC"]).defining_relation
        ('ABCD',)
    """
    _check_k(k, high=len(LETTERS))
    gens = sorted((_parse_generator(g, k, len(generators)) for g in generators),
                  key=lambda g: g[0])
    m = k - len(gens)
    added = [target for target, _ in gens]
    if added != list(range(m, k)):
        raise ValueError(f"generators must define each of {LETTERS[m:k]} exactly once, "
                         f"got {list(generators)!r}")
    words = [(1 << target) | base for target, base in gens]
    group = _span(words)
    return FractionalPlan(
        k=k,
        p=len(gens),
        generators=tuple(f"{LETTERS[t]}={_word(base)}" for t, base in gens),
        defining_relation=tuple(_word(w) for w in _sorted_words(group)),
        resolution=min((_order(w) for w in group), default=k + 1),
        runs=_runs(m, [base for _, base in gens]),
        aliases=MappingProxyType(_aliases(k, group)),
    )


def _check_k(k, high: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= high:
        raise ValueError(f"k (the number of two-level factors) must be an int from 2 to "
                         f"{high}, got {k!r}")


def _parse_generator(text: str, k: int, p: int) -> tuple[int, int]:
    """'E=ABCD' -> (index of E, bit mask of A, B, C, D); base letters are the first k-p."""
    base_letters, added_letters = LETTERS[: k - p], LETTERS[k - p: k]
    target, _, word = str(text).replace(" ", "").partition("=")
    if (len(target) != 1 or target not in added_letters or not word
            or any(c not in base_letters for c in word) or len(set(word)) != len(word)):
        raise ValueError(f"generator {text!r} must look like 'E=ABCD': one of "
                         f"{added_letters or '(none)'}, '=', then distinct letters "
                         f"from {base_letters}")
    return LETTERS.index(target), sum(1 << LETTERS.index(c) for c in word)


def _span(words: Sequence[int]) -> list[int]:
    """Every non-identity product of the generator words (the defining contrast subgroup)."""
    group = {0}
    for w in words:
        group |= {g ^ w for g in group}
    group.discard(0)
    return list(group)


def _runs(m: int, generated: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    rows = []
    for i in range(2 ** m):
        base = [1 if i >> j & 1 else -1 for j in range(m)]  # A alternates fastest
        extra = [_product(base, mask) for mask in generated]
        rows.append(tuple(base + extra))
    return tuple(rows)


def _product(signs: Sequence[int], mask: int) -> int:
    out = 1
    for j, s in enumerate(signs):
        if mask >> j & 1:
            out *= s
    return out


def _aliases(k: int, group: Sequence[int]) -> dict[str, tuple[str, ...]]:
    effects = [1 << i for i in range(k)]
    effects += [(1 << i) | (1 << j) for i, j in itertools.combinations(range(k), 2)]
    return {_word(e): tuple(_word(a) for a in _sorted_words(
        {e ^ w for w in group if _order(e ^ w) <= MAX_ALIAS_ORDER})) for e in effects}


def _order(mask: int) -> int:
    return bin(mask).count("1")


def _sorted_words(masks) -> list[int]:
    return sorted(masks, key=lambda w: (_order(w), _bits(w)))


def _bits(mask: int) -> list[int]:
    return [j for j in range(mask.bit_length()) if mask >> j & 1]


def _word(mask: int) -> str:
    return "".join(LETTERS[j] for j in _bits(mask))


def roman(n: int) -> str:
    """III, IV, V, ... for a resolution.

    >>> roman(4), roman(9)
    ('IV', 'IX')
    """
    numerals = ((10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"))
    out = ""
    for value, symbol in numerals:
        while n >= value:
            out, n = out + symbol, n - value
    return out
