"""Strict configs: nested dataclasses loaded from YAML files or mappings.

Experiments are described by plain dataclasses; this module fills them from
YAML (or a dict) and checks every value against the dataclass type hints, so a
typo such as ``lerning_rate: 0.1`` or ``batch_size: "32"`` fails at load time
with a :class:`~chorus.errors.ConfigError` naming the full dotted key and the
file, instead of being silently ignored or crashing hours into a run.

Why it works: ``typing.get_type_hints`` resolves the annotations (also under
``from __future__ import annotations``) and a small recursive checker walks
them: ``X | None``, ``Literal[...]``, ``list[T]``, ``tuple[T, ...]``,
``tuple[A, B]``, ``dict[K, V]``, ``Path`` and nested dataclasses. YAML is read
with a loader that follows YAML 1.2 for floats, so ``lr: 1e-3`` is the float
0.001 rather than PyYAML's (YAML 1.1) string ``"1e-3"``.

``to_dict`` is the inverse of ``load_config``: ``load_config(C, to_dict(c)) ==
c`` for every valid ``c``, also through a YAML file written by ``save_config``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union

import yaml

from chorus.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

__all__ = ["CONFIG_DIR", "load_config", "to_dict", "save_config", "require_path", "parse_overrides"]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
"""The experiment and benchmark YAMLs shipped inside the package (the repository's ``configs/`` links here),
so benchmarks find their fixed splits and levels in a pip-installed Chorus too."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as ``1e-3`` and ``5E+2``."""


class _Dumper(yaml.SafeDumper):
    """SafeDumper that knows the same floats, so it quotes the *string* ``"1e-3"``."""


_FLOAT_RESOLVER = (
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)
_Loader.add_implicit_resolver(*_FLOAT_RESOLVER)
_Dumper.add_implicit_resolver(*_FLOAT_RESOLVER)


def load_config(
    cls: type[T],
    source: str | os.PathLike | Mapping[str, Any],
    overrides: Sequence[str] = (),
) -> T:
    """Build dataclass ``cls`` from a YAML file or a mapping, then apply overrides.

    ``overrides`` are ``"dotted.key=value"`` strings whose values are parsed as
    YAML scalars (``lr=3e-4``, ``model.dims=[64, 128]``, ``name=null``); they are
    applied to the raw data before validation; an override naming a key the
    dataclass does not have is reported as that override (not as a key of the file).
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"load_config needs a dataclass type, got {cls!r}")
    if isinstance(source, Mapping):
        data, origin = _deep_copy(source), "<mapping>"
    else:
        path = Path(source)
        origin = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        try:
            data = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            raise ConfigError(f"invalid YAML in {path}: {exc}") from None
        data = {} if data is None else data
    if not isinstance(data, dict):  # safe YAML and _deep_copy make every mapping a dict
        raise ConfigError(f"{origin}: the top level must be a mapping, got {type(data).__name__}")
    for key, value in parse_overrides(overrides).items():
        _check_override_key(cls, key)
        _set_dotted(data, key, value, origin)
    return _build_dataclass(cls, data, prefix="", origin=origin)


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """Parse ``["a.b=1", "c=[x, y]"]`` into ``{"a.b": 1, "c": ["x", "y"]}`` (YAML values)."""
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(part == "" for part in key.split(".")):
            raise ConfigError(f"override {item!r} is not of the form 'dotted.key=value'")
        try:
            parsed[key] = yaml.load(raw, Loader=_Loader) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {exc}") from None
    return parsed


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dump a config dataclass to plain YAML-safe data (tuples → lists, paths → str)."""
    if not (dataclasses.is_dataclass(cfg) and not isinstance(cfg, type)):
        raise TypeError(f"to_dict needs a dataclass instance, got {type(cfg).__name__}")
    return _plain(cfg)


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    """Write ``to_dict(cfg)`` as YAML, atomically (temp file + ``os.replace``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.dump(to_dict(cfg), f, Dumper=_Dumper, sort_keys=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def require_path(value: str | os.PathLike, key: str, *, kind: Literal["file", "dir", "any"] = "any") -> Path:
    """Return ``Path(value)`` if it exists (as a file/dir when ``kind`` says so).

    Use it in a config's ``__post_init__`` or right after loading to fail early
    on a mistyped data or checkpoint path; the error names ``key`` and the path.
    """
    path = Path(value).expanduser()
    ok = {"file": path.is_file, "dir": path.is_dir, "any": path.exists}[kind]()
    if not ok:
        what = {"file": "file", "dir": "directory", "any": "path"}[kind]
        raise ConfigError(f"{key}: {what} does not exist: {path}")
    return path


# --------------------------------------------------------------------------- internals


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _check_override_key(cls: type, key: str) -> None:
    """Raise if dotted ``key`` names no field of ``cls`` (walking nested dataclasses and dict values)."""
    tp: Any = cls
    parts = key.split(".")
    for depth, part in enumerate(parts):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if typing.get_origin(tp) in (Union, types.UnionType) and len(args) == 1:
            tp = args[0]  # X | None
        if dataclasses.is_dataclass(tp):
            fields = [f.name for f in dataclasses.fields(tp) if f.init]
            if part not in fields:
                raise ConfigError(
                    f"override {key}: unknown key {'.'.join(parts[: depth + 1])}; "
                    f"valid keys of {_type_name(tp)}: {', '.join(fields)}"
                )
            tp = typing.get_type_hints(tp)[part]
        elif typing.get_origin(tp) in (dict, Mapping):
            tp = typing.get_args(tp)[1]
        else:
            return


def _set_dotted(data: dict[str, Any], key: str, value: Any, origin: str) -> None:
    node = data
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            at = ".".join(parts[: depth + 1])
            raise ConfigError(f"override {key!r}: {at} in {origin} is a {type(child).__name__}, not a mapping")
        node = child
    node[parts[-1]] = value


def _build_dataclass(cls: type[T], data: Any, prefix: str, origin: str) -> T:
    where = prefix.rstrip(".") or "<top level>"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} in {origin}: expected a mapping for {cls.__name__}, got {_show(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(
            f"unknown key {prefix}{unknown[0]} in {origin}; valid keys of {cls.__name__}: {', '.join(fields)}"
        )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], key, origin)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {key} in {origin}")
    try:
        return cls(**kwargs)
    except ValueError as exc:  # a __post_init__ check; ConfigError is a ValueError too
        raise ConfigError(f"{where} in {origin}: {exc}") from None


def _convert(tp: Any, value: Any, key: str, origin: str) -> Any:
    """Check ``value`` against type hint ``tp`` and return it in the hinted form."""

    def fail() -> ConfigError:
        return ConfigError(f"{key} in {origin}: expected {_type_name(tp)}, got {_show(value)}")

    if tp is Any:
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value, f"{key}.", origin)
    origin_tp = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin_tp is Literal:
        # Compare type as well as value so that True does not match Literal[1].
        if any(type(value) is type(a) and value == a for a in args):
            return value
        raise ConfigError(f"{key} in {origin}: expected one of {list(args)}, got {_show(value)}")
    if origin_tp is Union or origin_tp is types.UnionType:
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, key, origin)
            except ConfigError:
                continue
        raise fail()
    if tp is type(None):
        if value is None:
            return None
        raise fail()
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise fail()
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail()
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise fail()
    if origin_tp in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            raise fail()
        if origin_tp is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ConfigError(f"{key} in {origin}: expected {len(args)} items, got {len(value)}")
            items = [_convert(a, v, f"{key}[{i}]", origin) for i, (a, v) in enumerate(zip(args, value))]
        else:
            item_tp = args[0] if args else Any
            items = [_convert(item_tp, v, f"{key}[{i}]", origin) for i, v in enumerate(value)]
        return tuple(items) if origin_tp is tuple else items
    if origin_tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise fail()
        key_tp, val_tp = args if args else (Any, Any)
        return {
            _convert(key_tp, k, f"{key}.{k}", origin): _convert(val_tp, v, f"{key}.{k}", origin)
            for k, v in value.items()
        }
    bare = {list: list[Any], tuple: tuple[Any, ...], dict: dict[Any, Any]}
    if tp in bare:
        return _convert(bare[tp], value, key, origin)
    raise TypeError(f"{key}: unsupported type hint {tp!r} in a config dataclass")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"
