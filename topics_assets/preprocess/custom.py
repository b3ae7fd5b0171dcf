"""Custom preprocessors: a user's callable ("package.module:function") picks the messages or spans to keep."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import traceback
from collections.abc import Callable
from typing import Any

from topics_assets.traces import MESSAGE_FIELDS, Message, Span, Trace


# ---------------------------------------------------------------------------
# Custom preprocessors


class CustomPreprocessorError(Exception):
    """A custom preprocessor failed on one trace: that trace fails, not the run.

    `details` holds the callable's own traceback, for the failure record.
    """

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


def load_custom(spec: str) -> Callable[[Trace], Any]:
    """The callable named "package.module:function" (or "module:Class.method").

    Raises ConfigError when it cannot be imported: a bad setting fails the run
    once, up front, rather than every trace.
    """
    from topics_assets.config import ConfigError

    module_name, sep, attr = spec.strip().partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"preprocess.custom {spec!r} must look like 'package.module:function'")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - ImportError, or the module itself raising on import
        raise ConfigError(f"preprocess.custom {spec!r}: cannot import {module_name!r}: {type(e).__name__}: {e}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"preprocess.custom {spec!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"preprocess.custom {spec!r}: {attr!r} is not callable")
    return obj


def cached_custom(spec: str) -> Callable[[Trace], Any]:
    fn = _loaded.get(spec)
    if fn is None:
        fn = _loaded[spec] = load_custom(spec)
    return fn


_loaded: dict[str, Callable[[Trace], Any]] = {}


def apply_custom(fn: Callable[[Trace], Any], trace: Trace, name: str = "") -> Trace:
    """The trace as the custom callable reduced it: its messages or spans, in a trace.

    The callable gets a copy (it may mutate what it likes) and returns a list of
    Message (or {"role", "content", ...} dicts), a list of Span, or a Trace.
    Whatever it keeps still goes through de-duplication, redaction and the cap.
    """
    name = name or getattr(fn, "__qualname__", repr(fn))
    try:
        result = fn(copy.deepcopy(trace))
    except Exception as e:  # noqa: BLE001 - any error of user code fails this trace alone
        details = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        raise CustomPreprocessorError(
            f"custom preprocessor {name} failed on trace {trace.trace_id}: {type(e).__name__}: {e}", details
        ) from e
    if isinstance(result, Trace):
        return result
    if isinstance(result, tuple):
        result = list(result)
    if isinstance(result, list):
        if all(isinstance(x, Span) for x in result):
            return dataclasses.replace(trace, spans=result)
        if all(isinstance(x, (Message, dict)) for x in result):
            try:
                messages = [x if isinstance(x, Message) else Message(**x) for x in result]
            except TypeError as e:
                raise CustomPreprocessorError(
                    f"custom preprocessor {name} returned a message dict that is not a message on trace "
                    f"{trace.trace_id}: {e} (keys allowed: {', '.join(MESSAGE_FIELDS)})"
                ) from e
            return dataclasses.replace(trace, spans=[Span("custom", "llm", name="custom", input=messages)])
        kinds = sorted({type(x).__name__ for x in result})
        raise CustomPreprocessorError(
            f"custom preprocessor {name} returned a list of {', '.join(kinds)} on trace {trace.trace_id}; "
            "expected only Message (or message dicts) or only Span"
        )
    raise CustomPreprocessorError(
        f"custom preprocessor {name} returned {type(result).__name__} on trace {trace.trace_id}; "
        "expected a list of Message, a list of Span, or a Trace"
    )
