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
    data = {k: _with_nested_default(fields[k], v) for k, v in data.items()}
    kwargs = {k: _check_type(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise WorkbenchError(f"{where or 'config'}: {e}") from None
    except WorkbenchError as e:  # a nested section's own validation: name the section
        if where and not str(e).startswith(where):
            raise WorkbenchError(f"{where}: {e}") from None
        raise


def _with_nested_default(f: dataclasses.Field, value: Any) -> Any:
    """A mapping given for a nested section starts from that field's own default instance, so that a
    parent's ``default_factory=lambda: Section(x=1)`` keeps ``x=1`` when other keys are set; a mapping
    field with default entries keeps the entries whose keys are not given."""
    if not isinstance(value, dict) or f.default_factory is dataclasses.MISSING:
        return value
    default = f.default_factory()
    if isinstance(default, dict):  # a mapping with default entries: the given keys replace theirs only
        return {**default, **value}
    if not dataclasses.is_dataclass(default) or isinstance(default, type):
        return value
    base = {g.name: getattr(default, g.name) for g in dataclasses.fields(default) if g.init}
    for k, v in value.items():
        base[k] = (
            _with_nested_default(next(g for g in dataclasses.fields(default) if g.name == k), v)
            if k in base
            else v
        )
    return {k: to_dict(v) if dataclasses.is_dataclass(v) else v for k, v in base.items()}


def make_config(cls: type[T], config: T | None = None, overrides: dict | None = None) -> T:
    """``config`` (or the defaults of ``cls``) with keyword ``overrides`` of its fields, validated.

    Library functions take ``config=None, **overrides`` and call this, so a default lives only in the
    dataclass. An unknown keyword is a one-line WorkbenchError listing the valid ones.
    """
    if config is not None and not isinstance(config, cls):
        raise WorkbenchError(f"config must be a {cls.__name__}, got {type(config).__name__}")
    if not overrides:
        return config if config is not None else cls()
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise WorkbenchError(
            f"unknown {cls.__name__} option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
        )
    data = {k: v for k, v in overrides.items()}
    if config is not None:
        return dataclasses.replace(config, **data)
    return cls(**data)


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


# -- command-line flags generated from a config dataclass ---------------------------------------------


def field_docs(cls: type) -> dict[str, str]:
    """The docstring of every field of dataclass ``cls``: the string literal written under the field.

    Inherited fields are included (a subclass may re-document a field). Read from the class source with
    :mod:`ast`, so the docstring is written once, in the code, and serves as the CLI help.
    """
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return ""
    value = to_dict(value)
    if value is None or value == [] or value == {}:
        return ""
    if isinstance(value, list):
        value = ",".join(map(str, value))
    return f" (default: {value})"


def _split_commas(values: list) -> list:
    out = []
    for v in values:
        out += [p for p in v.split(",") if p] if isinstance(v, str) else [v]
    return out


def _yaml_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def add_field_argument(
    parser: Any, dest: str, tp: Any, help: str = "", *, required: bool = False, flag: str | None = None
) -> None:
    """Add the flag ``--<dest>`` (or ``flag``) for a value of type ``tp`` (the rules of :func:`add_config_arguments`)."""
    import argparse

    tp, _ = _unwrap_optional(tp)
    kw: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": help.replace("%", "%%")}
    origin = typing.get_origin(tp)
    if tp is bool:
        kw["action"] = argparse.BooleanOptionalAction
    elif origin is typing.Literal:
        choices = list(typing.get_args(tp))
        kw.update(choices=choices, type=type(choices[0]))
    elif origin in (list, tuple) or tp in (list, tuple):
        args = typing.get_args(tp)
        inner, _ = _unwrap_optional(args[0]) if args else (str, False)
        kw.update(
            nargs="+", type=inner if inner in (int, float) else str, metavar=dest.split(".")[-1].upper()
        )
    elif origin is dict or tp is dict:
        kw.update(type=_yaml_value, metavar="YAML")
    elif tp in (int, float, str):
        kw["type"] = tp
    elif tp is Path:
        kw["type"] = str
    else:
        kw["type"] = _yaml_value
    if "action" not in kw:
        kw.setdefault("metavar", dest.split(".")[-1].upper())
    if required:
        kw["required"] = True
    parser.add_argument(flag or "--" + dest.replace("_", "-"), **kw)


def option_union(owners: dict[str, type]) -> dict[str, tuple[Any, str, list[str]]]:
    """The fields of several option dataclasses (owner name -> class), merged by name: name -> (type,
    docstring, the owners that take it); type and docstring are the first owner's. A command whose
    methods each have an options dataclass offers the union as flags (:func:`add_option_flags`)."""
    out: dict[str, tuple[Any, str, list[str]]] = {}
    for owner, cls in owners.items():
        hints, docs = typing.get_type_hints(cls), field_docs(cls)
        for f in dataclasses.fields(cls):
            tp, doc, users = out.get(f.name, (hints[f.name], docs.get(f.name, ""), []))
            out[f.name] = (tp, doc, [*users, owner])
    return out


def add_option_flags(parser: Any, options: dict, title: str, *, skip: set[str] = frozenset()) -> None:
    """One ``--name`` flag per entry of :func:`option_union` (dest ``options.<name>``), in its own group;
    ``skip`` names the fields the command itself already has. Read them back with :func:`given_options`."""
    group = parser.add_argument_group(title)
    for name, (tp, doc, users) in options.items():
        if name not in skip:
            flag = "--" + name.replace("_", "-")
            add_field_argument(group, f"options.{name}", tp, f"{doc} [{', '.join(users)}]", flag=flag)


def given_options(args: Any) -> dict[str, Any]:
    """The option flags the user gave (:func:`add_option_flags`), by field name."""
    return {k.split(".", 1)[1]: v for k, v in vars(args).items() if k.startswith("options.")}


def add_config_arguments(parser: Any, cls: type, *, prefix: str = "", skip: tuple[str, ...] = ()) -> None:
    """Add one ``--flag`` per field of dataclass ``cls`` to an argparse parser; help = the field docstring.

    Defaults are not copied into the parser (a flag left out keeps the dataclass default), so every
    default lives in one place. Lists take several values or a comma-separated one, booleans take
    ``--flag/--no-flag``, ``Literal`` fields list their choices, mappings take YAML (``'{beta: 0.1}'``).
    Required fields come first. Nested dataclass fields become ``--field.sub`` flags; ``skip`` names
    fields to leave out, nested ones by their dotted name. Read the result back with :func:`config_from_args`.
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    fields = [
        f for f in dataclasses.fields(cls) if f.init and f.name not in skip and prefix + f.name not in skip
    ]

    def has_default(f: dataclasses.Field) -> bool:
        return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING

    for f in sorted(fields, key=has_default):
        tp, _ = _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(tp):
            add_config_arguments(parser, tp, prefix=prefix + f.name + ".", skip=skip)
            continue
        required = not has_default(f)
        help = docs.get(f.name, "") + ("" if required else _default_text(f))
        add_field_argument(parser, prefix + f.name, hints[f.name], help, required=required)


def args_to_dict(args: Any, cls: type, *, prefix: str = "") -> dict:
    """The values given on the command line for the fields of ``cls`` (nested), as a plain mapping."""
    given = vars(args)
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        tp, _ = _unwrap_optional(hints[f.name])
        dest = prefix + f.name
        if dataclasses.is_dataclass(tp):
            nested = args_to_dict(args, tp, prefix=dest + ".")
            if nested:
                out[f.name] = nested
        elif dest in given:
            value = given[dest]
            out[f.name] = _split_commas(value) if isinstance(value, list) else value
    return out


def config_from_args(cls: type[T], args: Any, base: dict | None = None) -> T:
    """Build ``cls`` from a YAML-derived ``base`` mapping (optional) and the flags of :func:`add_config_arguments`."""

    def merge(a: dict, b: dict) -> dict:
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    return from_dict(cls, merge(base or {}, args_to_dict(args, cls)))
