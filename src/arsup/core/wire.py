"""Events as JSON lines: how the loop's events travel to screens and commands in other processes.

Every event is a plain dataclass; on the wire it is one JSON object with its
class name under ``"type"`` and its fields beside it. Experiments travel as
their journal records. The one thing that cannot travel is an approval's
``Future``: the question goes with its ``question_id``, and the receiving
side gets a fresh local future (see ``decode``), which a client answers for
its person by sending the answer back under that id.
"""

from __future__ import annotations

import dataclasses
import typing
import json
from concurrent.futures import Future
from typing import Any

from arsup.core import events
from arsup.core.experiment import Experiment

_TYPES: dict[str, type] = {cls.__name__: cls for cls in typing.get_args(events.Event)}
_EXPERIMENT_FIELDS = {"experiment", "best"}


class WireError(ValueError):
    """A line that is not an event this arsup knows."""


def encode(event: events.Event) -> dict[str, Any]:
    """An event as a JSON-ready dict."""
    data: dict[str, Any] = {"type": type(event).__name__}
    for item in dataclasses.fields(event):
        value = getattr(event, item.name)
        if item.name == "future":
            continue
        if isinstance(value, Experiment):
            value = value.to_json()
        elif item.name == "history":
            value = [experiment.to_json() for experiment in value]
        data[item.name] = value
    return data


def decode(data: Any) -> events.Event:
    """The event a dict describes; an approval gets a new, unanswered local future."""
    if not isinstance(data, dict) or data.get("type") not in _TYPES:
        raise WireError(f"not an arsup event: {str(data)[:200]}")
    cls = _TYPES[data["type"]]
    known = {item.name for item in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    try:
        for name, value in data.items():
            if name not in known:
                continue  # a newer arsup's field
            if name in _EXPERIMENT_FIELDS and value is not None:
                value = Experiment.from_json(value)
            elif name == "history":
                value = [Experiment.from_json(item) for item in value]
            values[name] = value
        if cls is events.ApprovalRequested:
            values["future"] = Future()
        return cls(**values)  # type: ignore[no-any-return]
    except (TypeError, ValueError, KeyError) as exc:
        raise WireError(f"a {data['type']} that does not fit: {exc}") from None


def dumps(message: dict[str, Any]) -> bytes:
    """One line of the protocol."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def loads(line: bytes) -> dict[str, Any]:
    """One line of the protocol as an object; WireError for anything else, a line nested too deep included
    (`[[[...` 100,000 deep is a short line, and json raises RecursionError on it)."""
    try:
        message = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WireError(f"not a JSON line: {exc}") from None
    except RecursionError:
        raise WireError("not a JSON line: nested too deep") from None
    if not isinstance(message, dict):
        raise WireError("not a JSON object")
    return message
