"""One-line messages for pydantic validation errors of YAML files (cohort configs, radiomics params).

A misspelt key is the commonest config mistake, so an unknown key is reported with the closest
valid key of the section it sits in (``difflib.get_close_matches``)::

    configs/metabric.yaml: key 'clinical.label.colum': unknown key. Did you mean 'column'? Fix the config and rerun.

Kept below :mod:`graphonc.config` and :mod:`graphonc.radiomics_config` so that both use it
without importing each other.
"""
from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Sequence

from pydantic import BaseModel, ValidationError


def _models_in(annotation) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold: ``X``, ``X | None``, ``list[X]``, ``dict[str, X]``, unions."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out += _models_in(arg)
    return out


def _walk(root: type[BaseModel], loc: Sequence) -> tuple[list[type[BaseModel]], list[str]]:
    """The models the last element of ``loc`` belongs to, and the path as the user wrote it.

    Parts of ``loc`` that are not field names (list indices, dict keys, a union's tag such as
    ``cbioportal`` in ``input.cbioportal.study_dir``) keep the current models; a tag narrows a
    union to the member whose literal field has that value, and is left out of the shown path.
    """
    models, shown = [root], []
    for part in loc[:-1]:
        inner = [m for m in models if isinstance(part, str) and part in m.model_fields]
        if inner:
            models = [sub for m in inner for sub in _models_in(m.model_fields[part].annotation)] or models
            shown.append(str(part))
            continue
        tagged = [m for m in models if any(f.default == part for f in m.model_fields.values())]
        if tagged and len(models) > 1:
            models = tagged  # a discriminated union's tag: not part of what the user wrote
        else:
            shown.append(str(part))
    if loc:
        shown.append(str(loc[-1]))
    return models, shown


def closest_key(root: type[BaseModel], loc: Sequence) -> str | None:
    """The valid key closest to ``loc[-1]`` in the section ``loc`` points into, or None."""
    models, _ = _walk(root, loc)
    valid = sorted({name for m in models for name in m.model_fields})
    hits = difflib.get_close_matches(str(loc[-1]), valid, n=1)
    return hits[0] if hits else None


def format_validation_error(path: Path, exc: ValidationError, root: type[BaseModel], prefix: Sequence = (),
                            fix: str = "Fix the config and rerun.") -> str:
    """``<file>: key '<dotted key>': <problem>[. Did you mean '<key>'?] (and N more). <fix>``.

    Unknown keys are reported first: a misspelt required key also makes the right one "missing",
    and the misspelling is the cause to name. ``prefix`` is prepended to every location (the
    section a nested model was validated for).
    """
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")  # stable: keeps pydantic's order
    first = errors[0]
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    if first["type"] == "union_tag_not_found" and isinstance(first.get("input"), dict):
        # the key that picks the section's variant (``input.kind``) is missing: misspelt, most likely
        tag = str(first.get("ctx", {}).get("discriminator", "")).strip("'\"")
        typo = difflib.get_close_matches(tag, [str(k) for k in first["input"]], n=1)
        if typo:
            key = ".".join(str(x) for x in (*prefix, *first["loc"], typo[0]))
            return f"{path}: key {key!r}: unknown key{more}. Did you mean {tag!r}? {fix}"
    if first["type"] != "extra_forbidden":
        key = ".".join(str(x) for x in (*prefix, *first["loc"]))
        return f"{path}: key {key!r}: {first['msg']}{more}. {fix}"
    _, shown = _walk(root, first["loc"])
    key = ".".join([*map(str, prefix), *shown])
    best = closest_key(root, first["loc"])
    hint = f" Did you mean {best!r}?" if best else " Check its spelling."
    return f"{path}: key {key!r}: unknown key{more}.{hint} {fix}"
