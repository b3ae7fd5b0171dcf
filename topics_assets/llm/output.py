"""The one JSON object a model's answer must hold, and how to ask again for it."""

from __future__ import annotations

import json
import re


from .errors import BadOutput

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)\n?\s*```", re.DOTALL)


def parse_json_object(text: str | None) -> dict:
    """The JSON object in a model's answer; tolerates ```json fences. Raises ValueError."""
    if text is None or not text.strip():
        raise BadOutput("empty_output", "the answer was empty")
    stripped = text.strip()
    fenced = _FENCE.search(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    elif stripped.startswith("```"):  # an opening fence with no closing one (cut off)
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
    try:
        data = json.loads(stripped)
    except ValueError as e:
        raise BadOutput("invalid_json", f"not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise BadOutput("not_an_object", f"expected a JSON object, got {type(data).__name__}")
    return data


def reask_message(problem: BadOutput) -> str:
    if problem.reason == "truncated":
        return (
            "Your previous answer was cut off at the output length limit. Reply again with a "
            "shorter answer: only the JSON object, matching the schema, with no other text."
        )
    return (
        f"Your previous answer could not be used: {problem}. Reply again with only a JSON object "
        "that matches the schema exactly: no prose, no code fences, no extra keys."
    )
