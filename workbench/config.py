"""Typed, strict run configs: YAML in, resolved YAML out.

A config is a (possibly nested) dataclass with a docstring per field and validation in
``__post_init__`` (the sparsify style). :func:`from_dict` refuses unknown keys and wrong types with one
line naming the key and the fix; :func:`load_config` reads YAML (malformed YAML is a one-line error with
the line number) and applies ``key.sub=value`` overrides from the command line.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import WorkbenchError

T = TypeVar("T")


def _check_type(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, where)
            except WorkbenchError as e:
                errors.append(str(e))
        raise WorkbenchError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise WorkbenchError(f"{where}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise WorkbenchError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where=where)
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise WorkbenchError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        items = [_check_type(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise WorkbenchError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            _fail(where, value, "float")
    if tp is Path or tp is os.PathLike:
        return Path(value) if isinstance(value, (str, Path)) else _fail(where, value, "a path")
    if isinstance(tp, type) and not isinstance(value, tp):
        _fail(where, value, tp.__name__)
    if tp is int and isinstance(value, bool):
        _fail(where, value, "int")
    return value


def _fail(where: str, value: Any, expected: str) -> Any:
    raise WorkbenchError(f"{where}: expected {expected}, got {value!r} ({type(value).__name__})")


def from_dict(cls: type[T], data: dict, *, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types are WorkbenchErrors."""
    if not isinstance(data, dict):
        raise WorkbenchError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise WorkbenchError(
            f"{where or 'config'}: unknown key(s) {', '.join(unknown)}; valid keys are {', '.join(sorted(fields))}"
        )
    kwargs = {k: _check_type(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise WorkbenchError(f"{where or 'config'}: {e}") from None


def to_dict(obj: Any) -> Any:
    """A dataclass config as plain YAML-able data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def read_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping; a missing file or malformed YAML is a one-line error with the location."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"config {path} not found; check the path")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise WorkbenchError(f"{where}: malformed YAML ({problem}); fix the file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise WorkbenchError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    """Apply ``key.sub=value`` overrides (values parsed as YAML scalars) to a nested mapping."""
    import yaml

    data = dict(data)
    for item in overrides or []:
        if "=" not in item:
            raise WorkbenchError(f"override {item!r} must look like key=value (e.g. train.steps=100)")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else {}
            node = node[part]
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def load_config(cls: type[T], path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> T:
    """Read ``path`` (optional) as YAML, apply overrides and build the typed config ``cls``."""
    data = read_yaml(path) if path else {}
    try:
        return from_dict(cls, apply_overrides(data, overrides))
    except WorkbenchError as e:
        raise WorkbenchError(f"{path}: {e}" if path else str(e)) from None


def dump_config(obj: Any, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML, atomically."""
    import yaml

    from .io import write_text

    return write_text(path, yaml.safe_dump(to_dict(obj), sort_keys=False))
