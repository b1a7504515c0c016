"""What names a result: a config's canonical JSON and its hash (open_lth's rule), and which of
its fields only record (in the spirit of open_lth's hparams: a field at its default is left
out, so that a new option with a default re-keys nothing).

A config is made of frozen dataclasses (and enums), each class named by `kind` (a stable
name, not its class name, so that renaming a class re-keys nothing), and plain values
(dicts with str keys, lists, tuples, str, int, float, bool, None). Its identity
(`identity_json`, `config_hash`) leaves out every field at its default and every field marked
`RECORDED`: what a unit records rather than how it is trained (a dense run's masks at more P).
A stored result serves any config of its key whose recorded fields it covers (`covers`: a
recorded sequence by a superset, any other recorded value by an equal one); `union` is what
a computation replacing it records, so that nothing it held is lost.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import re
from collections.abc import Mapping

HASH_CHARS = 16  # 64 bits of sha256: no collision in any realistic number of configs
_KIND = re.compile(r"[a-z0-9_]+")
RECORDED = {"recorded": True}  # field metadata: the field is recorded, not trained (left out of the hash)


def kind(name: str):
    """Class decorator: instances of the class (a frozen dataclass or an enum) enter a config
    as `name`, not as their class name; a hashed class must have one."""
    if not isinstance(name, str) or not _KIND.fullmatch(name):
        raise ValueError(f"a config kind must be lowercase letters, digits or '_', got {name!r}")

    def named(cls):
        cls.__config_kind__ = name
        return cls

    return named


def _kind(cls: type) -> str:
    name = cls.__dict__.get("__config_kind__")
    if name is None:
        raise ValueError(f"config class {cls.__qualname__} has no kind: decorate it with @ebnb.identity.kind(name)")
    return name


def _is_default(field: dataclasses.Field, canonical) -> bool:
    """Whether a field's value (as `canonical`) is its default (compared as JSON: 1, 1.0 and
    True differ)."""
    if field.default is not dataclasses.MISSING:
        default = field.default
    elif field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    else:
        return False
    return json.dumps(_canonical(default, True), sort_keys=True) == json.dumps(canonical, sort_keys=True)


def _canonical(value, identity: bool):
    """`value` as plain JSON data: dataclasses carry their kind, enums their kind and member;
    with `identity`, a dataclass without its fields at their defaults and its `RECORDED` ones."""
    if isinstance(value, enum.Enum):
        return {"__enum__": f"{_kind(type(value))}.{value.name}"}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {}
        for field in dataclasses.fields(value):
            item = _canonical(getattr(value, field.name), identity)
            if not (identity and (field.metadata.get("recorded") or _is_default(field, item))):
                fields[field.name] = item
        return {"__kind__": _kind(type(value)), **fields}
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise ValueError(f"config dict keys must be str, got {list(value)!r}")
        return {key: _canonical(item, identity) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item, identity) for item in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise ValueError(
        "config must be made of dataclasses, dicts, lists, tuples, str, int, float, bool, "
        f"None and enums, got {type(value).__name__}"
    )


def config_json(config, indent: int | None = None) -> str:
    """Canonical JSON of a whole config (every field; sorted keys); compact unless `indent`
    is given."""
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(_canonical(config, False), sort_keys=True, indent=indent, separators=separators)


def identity_json(config) -> str:
    """Canonical compact JSON of what names a config's result: no field at its default, no
    `RECORDED` field (at any depth)."""
    return json.dumps(_canonical(config, True), sort_keys=True, separators=(",", ":"))


def config_hash(config) -> str:
    """Stable hex digest of a config's identity (`identity_json`)."""
    return hashlib.sha256(identity_json(config).encode()).hexdigest()[:HASH_CHARS]


def recorded(config) -> dict:
    """{name: canonical value} of the `RECORDED` fields of `config` itself ({} if none)."""
    if not dataclasses.is_dataclass(config):
        return {}
    return {
        f.name: _canonical(getattr(config, f.name), False)
        for f in dataclasses.fields(config)
        if f.metadata.get("recorded")
    }


def covers(record: Mapping, config) -> bool:
    """Whether a stored result whose config.json is `record` (a config of the same key)
    serves `config`: each recorded sequence of `config` a subset of the record's, each other
    recorded value equal to it. Recorded fields of nested configs do not count (a ticket does
    not read what its dense run recorded)."""
    for name, wanted in recorded(config).items():
        held = record.get(name)
        if isinstance(wanted, list) and isinstance(held, list):
            held = {json.dumps(item, sort_keys=True) for item in held}
            if not all(json.dumps(item, sort_keys=True) in held for item in wanted):
                return False
        elif json.dumps(held, sort_keys=True) != json.dumps(wanted, sort_keys=True):
            return False
    return True


def union(config, record: Mapping):
    """`config` with each recorded sequence extended by the values of the record's it lacks
    (the union sorted)."""
    changes = {}
    for name in recorded(config):
        values, held = getattr(config, name), record.get(name)
        if isinstance(values, tuple) and isinstance(held, list):
            extra = [value for value in held if value not in values]
            if extra:
                changes[name] = tuple(sorted((*values, *extra)))
    return dataclasses.replace(config, **changes) if changes else config
