"""Request schemas that validate with Joi-style messages and describe themselves as JSON Schema.

One description serves both the validator (recordings.md §4) and `/openapi.json`, so the documented
contract and the enforced one cannot drift apart. Validation stops at the first failing field, in the
order the fields are declared.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from recordkit.clock import parse_iso8601

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")


class ValidationFailed(Exception):
    """The first field that broke its rule, with the message tail (`"path" <tail>`)."""

    def __init__(self, path: str, tail: str) -> None:
        super().__init__(f'"{path}" {tail}')
        self.detail = f'"{path}" {tail}'


@dataclass(frozen=True)
class Str:
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    enum: tuple[str, ...] | None = None
    format: str | None = None
    uri_schemes: tuple[str, ...] = ()
    scheme_message: str | None = None
    allow_empty: bool = False
    secret: bool = False


@dataclass(frozen=True)
class Int:
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class Num:
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class Bool:
    pass


@dataclass(frozen=True)
class Field:
    name: str
    schema: Schema
    required: bool = False
    nullable: bool = False
    aliases: tuple[str, ...] = ()
    description: str | None = None


@dataclass(frozen=True)
class Obj:
    fields: tuple[Field, ...] = ()
    free_form: bool = False


@dataclass(frozen=True)
class Arr:
    items: Schema
    min_items: int | None = None
    max_items: int | None = None
    unique: bool = False


@dataclass(frozen=True)
class Map:
    """An object whose keys are names chosen by the caller, each mapping to `values`."""

    values: Schema
    key_pattern: str
    key_max_length: int
    max_keys: int | None = None


Schema = Str | Int | Num | Bool | Obj | Arr | Map


@dataclass(frozen=True)
class QueryParam:
    name: str
    schema: Schema
    description: str | None = None
    many: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def validate(schema: Schema, value: Any, path: str) -> Any:
    """Check `value` against `schema`; return it cleaned (integral floats as ints, unknown keys dropped)."""
    match schema:
        case Str():
            return _check_str(schema, value, path)
        case Int():
            return _check_int(schema, value, path)
        case Num():
            return _check_num(schema, value, path)
        case Bool():
            if not isinstance(value, bool):
                raise ValidationFailed(path, "must be a boolean")
            return value
        case Obj():
            return _check_obj(schema, value, path)
        case Arr():
            return _check_arr(schema, value, path)
        case Map():
            return _check_map(schema, value, path)
    raise TypeError(schema)


def validate_body(schema: Obj, body: Any) -> dict[str, Any]:
    """Validate a whole request body; the root object is called `value` in messages."""
    if not isinstance(body, dict):
        raise ValidationFailed("value", "must be of type object")
    return _check_obj(schema, body, "")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _check_str(schema: Str, value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(path, "must be a string")
    if "\x00" in value:
        # PostgreSQL cannot store NUL in text; no legitimate value carries one.
        raise ValidationFailed(path, "must not contain the null character")
    if value == "" and not schema.allow_empty:
        raise ValidationFailed(path, "is not allowed to be empty")
    if schema.enum is not None and value not in schema.enum:
        raise ValidationFailed(path, f"must be one of [{', '.join(schema.enum)}]")
    if schema.min_length is not None and len(value) < schema.min_length:
        raise ValidationFailed(path, f"length must be at least {schema.min_length} characters long")
    if schema.max_length is not None and len(value) > schema.max_length:
        raise ValidationFailed(path, f"length must be less than or equal to {schema.max_length} characters long")
    if schema.pattern is not None and value and not re.search(schema.pattern, value):
        if schema.secret:
            raise ValidationFailed(path, "fails to match the required pattern")
        raise ValidationFailed(path, f'with value "{value}" fails to match the required pattern: {schema.pattern}')
    if schema.format == "uuid" and not UUID_RE.match(value):
        raise ValidationFailed(path, "must be a valid GUID")
    if schema.format == "uri" and value:
        if not URI_RE.match(value):
            raise ValidationFailed(path, "must be a valid uri")
        scheme = value.split(":", 1)[0].lower()
        if schema.uri_schemes and scheme not in schema.uri_schemes:
            raise ValidationFailed(path, schema.scheme_message or "must be a valid uri")
    if schema.format == "date-time":
        try:
            parse_iso8601(value)
        except ValueError:
            raise ValidationFailed(path, "must be in ISO 8601 date format") from None
    return value


def _check_number(value: Any, path: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationFailed(path, "must be a number")
    return value


def _check_bounds(value: float, minimum: float | None, maximum: float | None, path: str) -> None:
    if minimum is not None and value < minimum:
        raise ValidationFailed(path, f"must be greater than or equal to {_plain(minimum)}")
    if maximum is not None and value > maximum:
        raise ValidationFailed(path, f"must be less than or equal to {_plain(maximum)}")


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _check_int(schema: Int, value: Any, path: str) -> int:
    number = _check_number(value, path)
    if isinstance(number, float):
        if not number.is_integer():
            raise ValidationFailed(path, "must be an integer")
        number = int(number)
    _check_bounds(number, schema.minimum, schema.maximum, path)
    return number


def _check_num(schema: Num, value: Any, path: str) -> float | int:
    number = _check_number(value, path)
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    _check_bounds(number, schema.minimum, schema.maximum, path)
    return number


def _check_obj(schema: Obj, value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationFailed(path or "value", "must be of type object")
    if schema.free_form:
        return value
    cleaned: dict[str, Any] = {}
    for spec in schema.fields:
        present, raw = _lookup(value, spec)
        here = _join(path, spec.name)
        if not present or (raw is None and not spec.nullable):
            if spec.required:
                raise ValidationFailed(here, "is required")
            continue
        cleaned[spec.name] = None if raw is None else validate(spec.schema, raw, here)
    return cleaned


def _lookup(value: Mapping[str, Any], spec: Field) -> tuple[bool, Any]:
    for name in (spec.name, *spec.aliases):
        if name in value and (value[name] is not None or name == spec.name or spec.nullable):
            return True, value[name]
    return False, None


def _check_arr(schema: Arr, value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValidationFailed(path, "must be an array")
    if schema.min_items is not None and len(value) < schema.min_items:
        raise ValidationFailed(path, f"must contain at least {schema.min_items} items")
    if schema.max_items is not None and len(value) > schema.max_items:
        raise ValidationFailed(path, f"must contain less than or equal to {schema.max_items} items")
    items = [validate(schema.items, item, f"{path}[{index}]") for index, item in enumerate(value)]
    if schema.unique:
        items = list(dict.fromkeys(items))
    return items


def _check_map(schema: Map, value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationFailed(path, "must be of type object")
    if schema.max_keys is not None and len(value) > schema.max_keys:
        noun = "key" if schema.max_keys == 1 else "keys"
        raise ValidationFailed(path, f"must have less than or equal to {schema.max_keys} {noun}")
    cleaned = {}
    for key, item in value.items():
        if not key or len(key) > schema.key_max_length or not re.search(schema.key_pattern, key):
            raise ValidationFailed(_join(path, key), "is not allowed")
        cleaned[key] = validate(schema.values, item, _join(path, key))
    return cleaned


def parse_query(params: Sequence[tuple[str, str]], spec: Sequence[QueryParam]) -> dict[str, Any]:
    """Read query parameters: empty values count as absent, the last of a repeated key wins,
    `many` parameters take repeated keys, `key[]` and comma lists alike."""
    cleaned: dict[str, Any] = {}
    for param in spec:
        if param.many:
            items = _many_values(params, param.name)
            if items:
                cleaned[param.name] = [
                    _coerce(param.schema, item, f"{param.name}[{index}]") for index, item in enumerate(items)
                ]
            continue
        given = [v for k, v in params if k == param.name and v != ""]
        if given:
            cleaned[param.name] = _coerce(param.schema, given[-1], param.name)
    return cleaned


def _many_values(params: Sequence[tuple[str, str]], name: str) -> list[str]:
    items: list[str] = []
    for key, raw in params:
        if key in (name, f"{name}[]"):
            items.extend(part.strip() for part in raw.split(",") if part.strip())
    return items


def _coerce(schema: Schema, raw: str, path: str) -> Any:
    if isinstance(schema, Int | Num):
        try:
            number = float(raw)
        except ValueError:
            raise ValidationFailed(path, "must be a number") from None
        return validate(schema, number, path)
    if isinstance(schema, Bool):
        if raw not in ("true", "false"):
            raise ValidationFailed(path, "must be a boolean")
        return raw == "true"
    return validate(schema, raw, path)


def query_datetime(value: str | None) -> datetime | None:
    """A validated `date-time` query value as naive UTC, or None when absent."""
    return None if value is None else parse_iso8601(value)


def json_schema(schema: Schema) -> dict[str, Any]:
    """The JSON Schema (OpenAPI 3.1) that describes what `validate` accepts."""
    match schema:
        case Str():
            out: dict[str, Any] = {"type": "string"}
            if schema.enum is not None:
                out["enum"] = list(schema.enum)
            min_length = max(schema.min_length or 0, 0 if schema.allow_empty else 1)
            if min_length:
                out["minLength"] = min_length
            if schema.max_length is not None:
                out["maxLength"] = schema.max_length
            if schema.pattern is not None:
                out["pattern"] = schema.pattern
            if schema.uri_schemes:
                out["pattern"] = "^(" + "|".join(schema.uri_schemes) + "):"
            if schema.format is not None:
                out["format"] = schema.format
            return out
        case Int() | Num():
            out = {"type": "integer" if isinstance(schema, Int) else "number"}
            if schema.minimum is not None:
                out["minimum"] = schema.minimum
            if schema.maximum is not None:
                out["maximum"] = schema.maximum
            return out
        case Bool():
            return {"type": "boolean"}
        case Obj():
            if schema.free_form:
                return {"type": "object"}
            properties = {}
            for spec in schema.fields:
                described = json_schema(spec.schema)
                if spec.nullable:
                    described = {"anyOf": [described, {"type": "null"}]}
                if spec.description:
                    described["description"] = spec.description
                properties[spec.name] = described
            out = {"type": "object", "properties": properties}
            required = [spec.name for spec in schema.fields if spec.required]
            if required:
                out["required"] = required
            return out
        case Arr():
            out = {"type": "array", "items": json_schema(schema.items)}
            if schema.min_items is not None:
                out["minItems"] = schema.min_items
            if schema.max_items is not None:
                out["maxItems"] = schema.max_items
            return out
        case Map():
            out = {
                "type": "object",
                "additionalProperties": json_schema(schema.values),
                "propertyNames": {"pattern": schema.key_pattern, "maxLength": schema.key_max_length},
            }
            if schema.max_keys is not None:
                out["maxProperties"] = schema.max_keys
            return out
    raise TypeError(schema)


def query_parameters(spec: Sequence[QueryParam]) -> list[dict[str, Any]]:
    """OpenAPI parameter objects for a route's query parameters."""
    described = []
    for param in spec:
        schema = json_schema(param.schema)
        if param.many:
            schema = {"type": "array", "items": schema}
        entry: dict[str, Any] = {"name": param.name, "in": "query", "required": False, "schema": schema}
        if param.many:
            entry.update({"style": "form", "explode": True})
        if param.description:
            entry["description"] = param.description
        entry.update(param.extra)
        described.append(entry)
    return described
