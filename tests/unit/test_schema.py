"""The validation DSL: Joi-style messages and the JSON Schema it publishes (recordings.md §4)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from recordkit.schema import (
    Arr,
    Bool,
    Field,
    Int,
    Map,
    Num,
    Obj,
    QueryParam,
    Str,
    ValidationFailed,
    json_schema,
    parse_query,
    validate,
    validate_body,
)

BODY = Obj(
    (
        Field("name", Str(min_length=2, max_length=4), required=True),
        Field("count", Int(minimum=1, maximum=10)),
        Field("ratio", Num(minimum=0)),
        Field("flag", Bool(), aliases=("legacy_flag",)),
        Field("tags", Arr(Str(), min_items=1, max_items=2, unique=True)),
        Field("inner", Obj((Field("kind", Str(enum=("A", "B")), required=True),)), nullable=True),
    )
)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], '"value" must be of type object'),
        ({}, '"name" is required'),
        ({"name": None}, '"name" is required'),
        ({"name": 3}, '"name" must be a string'),
        ({"name": ""}, '"name" is not allowed to be empty'),
        ({"name": "a"}, '"name" length must be at least 2 characters long'),
        ({"name": "abcde"}, '"name" length must be less than or equal to 4 characters long'),
        ({"name": "a\x00b"}, '"name" must not contain the null character'),
        ({"name": "ab", "count": True}, '"count" must be a number'),
        ({"name": "ab", "count": "5"}, '"count" must be a number'),
        ({"name": "ab", "count": 2.5}, '"count" must be an integer'),
        ({"name": "ab", "count": 0}, '"count" must be greater than or equal to 1'),
        ({"name": "ab", "count": 11.0}, '"count" must be less than or equal to 10'),
        ({"name": "ab", "ratio": -0.5}, '"ratio" must be greater than or equal to 0'),
        ({"name": "ab", "flag": "true"}, '"flag" must be a boolean'),
        ({"name": "ab", "tags": "x"}, '"tags" must be an array'),
        ({"name": "ab", "tags": []}, '"tags" must contain at least 1 items'),
        ({"name": "ab", "tags": ["a", "b", "c"]}, '"tags" must contain less than or equal to 2 items'),
        ({"name": "ab", "tags": ["a", 1]}, '"tags[1]" must be a string'),
        ({"name": "ab", "inner": {}}, '"inner.kind" is required'),
        ({"name": "ab", "inner": {"kind": "C"}}, '"inner.kind" must be one of [A, B]'),
    ],
)
def test_first_failing_field_names_the_problem(body: Any, message: str) -> None:
    with pytest.raises(ValidationFailed) as failed:
        validate_body(BODY, body)
    assert failed.value.detail == message


def test_clean_values() -> None:
    cleaned = validate_body(
        BODY, {"name": "ab", "count": 3.0, "legacy_flag": True, "tags": ["a", "a"], "inner": None, "extra": 1}
    )
    assert cleaned == {"name": "ab", "count": 3, "flag": True, "tags": ["a"], "inner": None}
    assert isinstance(cleaned["count"], int)
    assert validate_body(BODY, {"name": "ab", "flag": False, "legacy_flag": True})["flag"] is False


def test_strings_formats() -> None:
    assert validate(Str(format="uuid"), "B3F6A2C4-1E5D-4A7B-9C8D-2F3E4A5B6C7D", "id")
    with pytest.raises(ValidationFailed, match="must be a valid GUID"):
        validate(Str(format="uuid"), "b3f6a2c4", "id")
    with pytest.raises(ValidationFailed, match="must be a valid uri"):
        validate(Str(format="uri"), "not a uri", "u")
    with pytest.raises(ValidationFailed, match="scheme"):
        validate(Str(format="uri", uri_schemes=("rtmp",), scheme_message="bad scheme"), "http://x", "u")
    with pytest.raises(ValidationFailed, match="ISO 8601"):
        validate(Str(format="date-time"), "tuesday", "t")
    secret = Str(pattern="^a+$", secret=True)
    with pytest.raises(ValidationFailed) as failed:
        validate(secret, "hunter2", "password")
    assert "hunter2" not in failed.value.detail


def test_maps_limit_keys() -> None:
    layers = Map(Obj(), key_pattern="^[a-z]+$", key_max_length=5, max_keys=1)
    assert validate(layers, {"abc": {}}, "layers") == {"abc": {}}
    with pytest.raises(ValidationFailed, match=re.escape('"layers" must have less than or equal to 1 key')):
        validate(layers, {"a": {}, "b": {}}, "layers")
    with pytest.raises(ValidationFailed, match=re.escape('"layers.A" is not allowed')):
        validate(layers, {"A": {}}, "layers")


def test_query_strings() -> None:
    spec = [
        QueryParam("page_no", Int(minimum=0)),
        QueryParam("expired", Bool()),
        QueryParam("status", Str(enum=("A", "B")), many=True),
    ]
    params = [("page_no", "1"), ("page_no", "2.0"), ("expired", "true"), ("status", "A,,B"), ("status[]", "A")]
    assert parse_query(params, spec) == {"page_no": 2, "expired": True, "status": ["A", "B", "A"]}
    assert parse_query([("page_no", "")], spec) == {}
    for params, message in (
        ([("page_no", "x")], '"page_no" must be a number'),
        ([("expired", "True")], '"expired" must be a boolean'),
        ([("status", "A,C")], '"status[1]" must be one of [A, B]'),
    ):
        with pytest.raises(ValidationFailed) as failed:
            parse_query(params, spec)
        assert failed.value.detail == message


def test_published_json_schema() -> None:
    described = json_schema(BODY)
    assert described["required"] == ["name"]
    assert described["properties"]["name"] == {"type": "string", "minLength": 2, "maxLength": 4}
    assert described["properties"]["count"] == {"type": "integer", "minimum": 1, "maximum": 10}
    assert described["properties"]["inner"]["anyOf"][1] == {"type": "null"}
    assert json_schema(Str(uri_schemes=("rtmp", "rtmps"), format="uri"))["pattern"] == "^(rtmp|rtmps):"
