"""What a concept method is, and the one registry of them.

A ``ConceptMethod`` knows two things: how to ``fit`` a ``ConceptVector`` from positive/negative
activations at one site, and how to ``edit``, i.e. turn such a vector and a strength into the
steering edit that pushes toward one side. Methods are frozen dataclasses whose fields are their
options (the probe's ``C``, mean-centring's ``target`` side, ACE's ``reference`` point), so a
configured method is a value that can be compared and printed.

``register_method`` adds a class under its ``name`` (use it as a class decorator);
``get_method(name, **options)`` builds one, ``method_names()`` lists them in registration order.
Adding a method therefore means writing one class; the built-in ones are in ``methods.py``.
``fit_sites`` fits one vector per site for methods that steer several layers at once.
"""

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Optional

from torch import Tensor

from ..edits import Edit
from ..positions import PositionSpec
from ..sites import Site
from ..validation import check_choice, check_float
from .extract import extract

if TYPE_CHECKING:  # only for annotations: vectors.py imports this module
    from .vectors import ConceptVector

Toward = Literal["positive", "negative"]
Scale = Literal["mean_diff", "raw"]
TOWARD = ("positive", "negative")
SCALES = ("mean_diff", "raw")


@dataclass(frozen=True)
class ConceptMethod:
    """One way to make and use a concept direction. Subclasses set the class attributes ``name``
    (the registry key, stored in every ``ConceptVector.method``), ``label`` (for tables and figures)
    and ``needs_all_training`` (``fit`` needs activations of the whole training distribution), and
    implement ``fit`` and ``_edit``."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    needs_all_training: ClassVar[bool] = False
    # the strengths a comparison uses for this method when it is not given a grid for it (None: the
    # comparison's common grid, in units of ‖μ⁺ − μ⁻‖), and what a strength means, for tables
    default_grid: ClassVar[Optional[tuple[float, ...]]] = None
    strength_unit: ClassVar[str] = "× ‖μ⁺ − μ⁻‖"

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def fit(
        self,
        site: Site,
        pos: Tensor,
        neg: Tensor,
        *,
        all_training: Optional[Tensor] = None,
        concept: str = "",
        extra_params: Optional[dict] = None,
    ) -> "ConceptVector":
        """The method's ``ConceptVector`` at ``site`` from ``pos`` ``[n, d]`` and ``neg`` ``[m, d]``;
        ``extra_params`` are recorded in ``ConceptVector.params``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement fit")

    def fit_sites(
        self,
        model,
        sites: Sequence[Site],
        positive: Sequence[str],
        negative: Sequence[str],
        *,
        reduce: str = "mean",
        all_training: Optional[Mapping[Site, Tensor]] = None,
        positions: PositionSpec = "all",
        concept: str = "",
        extra_params: Optional[dict] = None,
        progress: bool = False,
    ) -> tuple["ConceptVector", ...]:
        """One vector per site from the texts of the two sides, for steering several sites at once.
        The default reads every site in one pass and fits each independently (``all_training``:
        ``{site: pool activations}`` for methods that need it); methods whose later sites depend on
        the edits at earlier ones (Linear-AcT's causal estimation) override it. ``positions`` is where
        the edits will act."""
        sites = tuple(sites)
        if not sites or not all(isinstance(s, Site) for s in sites):
            raise TypeError(f"fit_sites needs a non-empty sequence of Sites, got {sites!r}")
        texts = list(positive) + list(negative)
        acts = extract(model, texts, sites, reduce, progress=progress)
        n = len(positive)
        return tuple(
            self.fit(
                s,
                acts[s.short][:n],
                acts[s.short][n:],
                all_training=None if all_training is None else all_training[s],
                concept=concept,
                extra_params=extra_params,
            )
            for s in sites
        )

    def edit(
        self, vector: "ConceptVector", strength: float, toward: Toward = "positive", *, scale: Scale = "mean_diff"
    ) -> Edit:
        """The edit that steers with ``vector`` toward one side at ``strength`` (in units of
        ``‖μ⁺ − μ⁻‖`` with ``scale="mean_diff"``, so one strength is one push length for every method;
        ``scale="raw"`` uses the method's own vector length where that applies)."""
        if vector.method != self.name:
            raise ValueError(f"{type(self).__name__} edits '{self.name}' vectors, got a '{vector.method}' vector")
        check_choice("toward", toward, TOWARD)
        check_choice("scale", scale, SCALES)
        return self._edit(vector, check_float("strength", strength), toward, scale)

    def _edit(self, vector: "ConceptVector", strength: float, toward: Toward, scale: Scale) -> Edit:
        raise NotImplementedError(f"{type(self).__name__} does not implement _edit")


def push_length(vector: "ConceptVector") -> float:
    """``‖μ⁺ − μ⁻‖`` recorded at fit time (the unit of every strength), else the vector's own norm."""
    r = vector.params.get("mean_diff_norm")
    r = float(vector.direction.norm()) if r is None else float(r)
    if not math.isfinite(r) or r <= 0:
        raise ValueError(f"the vector's push length ‖μ⁺ − μ⁻‖ must be finite and > 0, got {r}")
    return r


_REGISTRY: dict[str, type[ConceptMethod]] = {}


def register_method(cls: type[ConceptMethod]) -> type[ConceptMethod]:
    """Register a ``ConceptMethod`` subclass under ``cls.name`` (a class decorator). A name can be
    registered once; registering a second class under it raises."""
    if not (isinstance(cls, type) and issubclass(cls, ConceptMethod)) or cls is ConceptMethod:
        raise TypeError(f"register_method needs a ConceptMethod subclass, got {cls!r}")
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} must be a (frozen) dataclass: its fields are the method's options")
    if not isinstance(cls.name, str) or not cls.name:
        raise ValueError(f"{cls.__name__}.name must be a non-empty string, got {cls.name!r}")
    known = _REGISTRY.get(cls.name)
    if known is not None and known is not cls:
        raise ValueError(f"a concept method named {cls.name!r} is already registered ({known.__name__})")
    _REGISTRY[cls.name] = cls
    return cls


def method_names() -> tuple[str, ...]:
    """Registered method names, in registration order."""
    return tuple(_REGISTRY)


def method_class(name: Any) -> type[ConceptMethod]:
    """The class registered under ``name``; the error lists the known names."""
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown concept method {name!r}; known methods: {', '.join(method_names()) or 'none'}")
    return cls


def get_method(name: str, **options: Any) -> ConceptMethod:
    """The method ``name`` configured with ``options`` (its dataclass fields, e.g. ``C=0.1``)."""
    cls = method_class(name)
    unknown = sorted(set(options) - set(cls.option_names()))
    if unknown:
        raise TypeError(
            f"concept method {name!r} has no option(s) {unknown}; its options are {list(cls.option_names())}"
        )
    return cls(**options)


__all__ = [
    "ConceptMethod",
    "Scale",
    "Toward",
    "get_method",
    "method_class",
    "method_names",
    "push_length",
    "register_method",
]
