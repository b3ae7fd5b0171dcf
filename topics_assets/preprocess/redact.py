"""Replace secrets and PII with placeholders before any text leaves for an LLM or lands in a table.

The rules are data (redact_rules.yaml, shipped with the package, modelled on gitleaks' rule set:
id, regex, keywords), applied in order, most specific first, so that a secret is not half-eaten
by a broader rule. What a rule sees is the text as a reader would: NFKC-normalised (full-width
digits are digits) with zero-width characters removed, every JSON string value inside it
decoded ("ok\\nAKIA..." is "ok", a newline, then a key), and base64 blobs decoded and checked
too. Ambiguous matches are validated in code: a digit run that fails the Luhn check is not a
card, an IBAN must pass mod-97, "::" in C++ is not an IPv6 address.

Speed: each rule runs only when one of its keywords occurs in the lower-cased text (or its
prefilter regex finds something), and then only in windows around the keyword hits when they
are few. Python's regex engine skips ahead fast only when a pattern starts with a literal or a
character class, so "not preceded by" checks run in code on the (rare) matches; patterns whose
first character is common (emails, IPs) are searched from a rarer literal anchor inside them.
A text that no rule changes is returned exactly as it came (normalisation is only for matching).
"""

from __future__ import annotations

import base64
import bisect
import binascii
import ipaddress
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

RULES_FILE = "redact_rules.yaml"
# Zero-width and invisible formatting characters a secret may hide behind (NFKC keeps them).
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_SENTINEL = "\x00"  # joins texts redacted in one pass; no rule matches across it
_MAX_DEPTH = 2  # JSON strings inside JSON strings, base64 inside those: this deep and no deeper


# ---------------------------------------------------------------------------
# Validators: a check in code on a rule's match (`validate:` in the rules file)


def luhn_ok(digits: str) -> bool:
    """The checksum every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# Lengths of the IBANs of the countries that issue them (ISO 13616 registry).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


def iban_ok(text: str) -> bool:
    """An IBAN of a known country's length whose mod-97 check gives 1."""
    s = re.sub(r"[ -]", "", text)
    if _IBAN_LENGTHS.get(s[:2]) != len(s):
        return False
    n = int("".join(str(int(c, 36)) for c in s[4:] + s[:4]))
    return n % 97 == 1


def ssn_ok(text: str) -> bool:
    """A US social security number as issued: area not 000, 666 or 9xx; group and serial not zero."""
    d = re.sub(r"\D", "", text)
    return d[:3] not in ("000", "666") and d[0] != "9" and d[3:5] != "00" and d[5:] != "0000"


def _preceded_by(m: re.Match[str], chars: str, word: bool = True) -> bool:
    i = m.start()
    if i == 0:
        return False
    s = m.string
    c = s[i - 1]
    if word and i >= 2 and s[i - 2] == "\\" and c in "nrtbf":  # a JSON escape ends the word before it
        return c in chars
    return c in chars or (word and (c.isalnum() or c == "_"))


def _luhn(m: re.Match[str]) -> bool:
    if _preceded_by(m, ".-", word=False):  # not the tail of a decimal, an id or a longer number
        return False
    digits = re.sub(r"\D", "", m.group(0))
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _iban(m: re.Match[str]) -> bool:
    return iban_ok(m.group(0))


def _ssn(m: re.Match[str]) -> bool:
    return not _preceded_by(m, ".-+") and ssn_ok(m.group(0))


def _bearer(m: re.Match[str]) -> bool:
    # Real tokens mix in digits; "bearer authentication" in prose does not.
    return any(c.isdigit() for c in m.group(1))


def _basic_auth(m: re.Match[str]) -> bool:
    try:
        raw = base64.b64decode(m.group(1) + "=" * (-len(m.group(1)) % 4), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    return ":" in raw and raw.isprintable()


def _email(m: re.Match[str]) -> bool:
    return not _preceded_by(m, ".%+-", word=False)


def _has_digit(m: re.Match[str]) -> bool:
    return any(c.isdigit() for c in m.group(m.lastindex or 0))


_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z_]*\]")
_COMMON_VALUES = frozenset(
    "true false null none undefined required optional string redacted hidden changeme example xxxxxxxx "
    "password secret token".split()
)


def _secret_value(m: re.Match[str]) -> bool:
    """A value that looks like a secret, not a word: it has a digit or a symbol, or is long and mixed."""
    v = m.group(m.lastindex or 0)
    if v.lower() in _COMMON_VALUES or _PLACEHOLDER.search(m.string, max(0, m.start(1) - 1), m.end(1) + 1):
        return False
    if v.startswith("[") or v.startswith("{{") or v.startswith("$") or v.startswith("<"):
        return False  # a placeholder, a template or a variable, not the secret
    if any(c.isdigit() for c in v) or any(not c.isalnum() for c in v):
        return True
    return len(v) >= 16 and v != v.lower() and v != v.upper()


def _intl_phone(m: re.Match[str]) -> bool:
    return not _preceded_by(m, "+") and 8 <= sum(c.isdigit() for c in m.group(0)) - (m.group(0)[:2] == "00") * 2 <= 15


def _national_phone(m: re.Match[str]) -> bool:
    return not _preceded_by(m, ".+-/:") and 10 <= sum(c.isdigit() for c in m.group(0)) <= 11


def _us_phone(m: re.Match[str]) -> bool:
    return not _preceded_by(m, ".+-")


def _ipv6(m: re.Match[str]) -> bool:
    text = m.group(0)
    # Two groups and five hex digits at least, so "::1", "a::b" and "Foo::Bar" in code stay.
    groups = [g for g in text.split(":") if g]
    if _preceded_by(m, ":.") or len(groups) < 2 or sum(map(len, groups)) < 5:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _ipv4(m: re.Match[str]) -> bool:
    return not _preceded_by(m, ".")


VALIDATORS: dict[str, Callable[[re.Match[str]], bool]] = {
    "luhn": _luhn, "iban": _iban, "ssn": _ssn, "bearer": _bearer, "basic_auth": _basic_auth, "email": _email,
    "has_digit": _has_digit, "secret_value": _secret_value, "intl_phone": _intl_phone,
    "national_phone": _national_phone, "us_phone": _us_phone, "ipv6": _ipv6, "ipv4": _ipv4,
}


# ---------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str
    pattern: re.Pattern[str]
    keywords: tuple[str, ...] = ()  # skip the rule when none of these occurs in the lower-cased text
    prefilter: re.Pattern[str] | None = None  # skip the rule when this fast regex finds nothing
    word: bool = True  # the match must start a word (not follow a letter, digit or "_")
    group: int = 0  # the capture group replaced
    check: Callable[[re.Match[str]], bool] | None = None
    shrink: bool = False
    anchor: re.Pattern[str] | None = None
    back: re.Pattern[str] | None = None
    window: int = 640  # characters after a keyword hit a match may reach

    def accept(self, m: re.Match[str]) -> bool:
        if self.word and _preceded_by(m, ""):
            return False
        return self.check is None or self.check(m)


def _rule(spec: dict[str, Any]) -> Rule:
    flags = 0
    for f in spec.get("flags", ""):
        flags |= {"i": re.IGNORECASE, "s": re.DOTALL}[f]
    unknown = set(spec) - {"id", "kind", "regex", "flags", "keywords", "prefilter", "boundary", "group",
                           "validate", "shrink", "anchor", "back", "window"}
    if unknown:
        raise ValueError(f"redaction rule {spec.get('id')!r}: unknown field(s) {sorted(unknown)}")
    validate = spec.get("validate")
    if validate is not None and validate not in VALIDATORS:
        raise ValueError(f"redaction rule {spec['id']!r}: unknown validator {validate!r}")
    return Rule(
        id=spec["id"], kind=spec["kind"], pattern=re.compile(spec["regex"], flags),
        keywords=tuple(k.lower() for k in spec.get("keywords", ())),
        prefilter=re.compile(spec["prefilter"]) if spec.get("prefilter") else None,
        word=spec.get("boundary", "word") == "word", group=int(spec.get("group", 0)),
        check=VALIDATORS[validate] if validate else None, shrink=bool(spec.get("shrink")),
        anchor=re.compile(spec["anchor"]) if spec.get("anchor") else None,
        back=re.compile(spec["back"]) if spec.get("back") else None,
        window=int(spec.get("window", 24_000 if "{0,20000}" in spec["regex"] else 640)),
    )


@lru_cache(maxsize=1)
def rules() -> tuple[Rule, ...]:
    """The built-in rules, from the rules file shipped with the package."""
    doc = yaml.safe_load(resources.files("topics_assets.preprocess").joinpath(RULES_FILE).read_text("utf-8"))
    out = tuple(_rule(spec) for spec in doc["rules"])
    ids = [r.id for r in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{RULES_FILE}: duplicate rule ids")
    return out


@lru_cache(maxsize=1)
def _placeholders() -> re.Pattern[str]:
    kinds = sorted({r.kind for r in rules()}, key=len, reverse=True)
    return re.compile(r"\[(%s)\]" % "|".join(kinds))


def count_placeholders(texts: list[str]) -> dict[str, int]:
    """Built-in placeholders already in these texts (a payload redacted at ingest, preprocess.store_raw)."""
    counts: Counter[str] = Counter()
    pattern = _placeholders()
    for t in texts:
        if "[" in t:
            counts.update(m.group(1) for m in pattern.finditer(t))
    return dict(counts)


@lru_cache(maxsize=32)
def _extra_rules(items: tuple[tuple[str, str], ...]) -> tuple[Rule, ...]:
    return tuple(Rule(name, name.upper(), re.compile(pattern), word=False) for name, pattern in items)


# ---------------------------------------------------------------------------
# Matching


def _hits(text: str, lower: str, rule: Rule) -> list[tuple[int, int]] | None:
    """Windows of text around the rule's keyword hits (merged), or None: search all of it."""
    spans: list[tuple[int, int]] = []
    for k in rule.keywords:
        i = lower.find(k)
        while i != -1:
            spans.append((max(0, i - 64), min(len(text), i + rule.window)))
            if len(spans) * rule.window > len(text):
                return None  # hits everywhere: one pass over the whole text is cheaper
            i = lower.find(k, i + len(k))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _matches(rule: Rule, text: str, start: int = 0, end: int | None = None):
    """The rule's accepted matches in text[start:end], left to right, not overlapping."""
    end = len(text) if end is None else end
    if rule.anchor is not None:
        last = start
        for a in rule.anchor.finditer(text, start, end):
            if a.start() < last:
                continue
            b = rule.back.search(text, max(last, a.start() - 64), a.start())
            m = rule.pattern.match(text, b.start() if b else a.start(), end)
            if m is not None and m.end() > a.start() and rule.accept(m):
                last = m.end()
                yield m
        return
    if not rule.shrink:
        for m in rule.pattern.finditer(text, start, end):
            if rule.accept(m):
                yield m
        return
    pos = start
    while True:  # shrink: a rejected run may hold a match that starts or ends at one of its separators
        m = rule.pattern.search(text, pos, end)
        if m is None:
            return
        if not rule.accept(m):
            shorter = _shrunk(rule, m)
            if shorter is None:  # try again from its next group: "2024 4111 1111 1111 1111"
                seps = [i for i in (text.find(" ", m.start() + 1, m.end()), text.find("-", m.start() + 1, m.end()),
                                    text.find(".", m.start() + 1, m.end())) if i != -1]
                pos = min(seps) + 1 if seps else m.end()
                continue
            m = shorter
        yield m
        pos = m.end()


def _shrunk(rule: Rule, m: re.Match[str]) -> re.Match[str] | None:
    """The longest accepted match at m's start that ends before one of m's separators."""
    text, start, end = m.string, m.start(), m.end()
    while True:
        cut = max(text.rfind(" ", start, end), text.rfind("-", start, end), text.rfind(".", start, end))
        if cut <= start:
            return None
        shorter = rule.pattern.match(text, start, cut)
        if shorter is not None and rule.accept(shorter):
            return shorter
        end = cut


class _Claims:
    """Spans of the text taken by earlier (more specific) rules: a later rule's match may not overlap one."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.spans: list[tuple[int, int, str]] = []

    def add(self, start: int, end: int, kind: str) -> bool:
        i = bisect.bisect_right(self.starts, start)
        if i and self.spans[i - 1][1] > start:
            return False
        if i < len(self.spans) and self.spans[i][0] < end:
            return False
        self.starts.insert(i, start)
        self.spans.insert(i, (start, end, kind))
        return True

    def apply(self, text: str, counts: Counter[str]) -> str:
        parts: list[str] = []
        last = 0
        for s, e, kind in self.spans:
            parts += (text[last:s], f"[{kind}]")
            counts[kind] += 1
            last = e
        parts.append(text[last:])
        return "".join(parts)


class _Keywords:
    """Which keywords the lower-cased text holds, each looked for once."""

    def __init__(self, text: str) -> None:
        lower = text.lower()
        self.lower = lower if len(lower) == len(text) else None  # None: positions differ, no windows
        self._text = lower
        self._seen: dict[str, bool] = {}

    def any(self, keywords: tuple[str, ...]) -> bool:
        for k in keywords:
            hit = self._seen.get(k)
            if hit is None:
                hit = self._seen[k] = k in self._text
            if hit:
                return True
        return False


def _apply(rule: Rule, text: str, keywords: _Keywords | None, claims: _Claims) -> None:
    windows: list[tuple[int, int]] | None = None
    if rule.keywords:
        if keywords is None or not keywords.any(rule.keywords):
            return
        if keywords.lower is not None:
            windows = _hits(text, keywords.lower, rule)
    if rule.prefilter is not None and rule.prefilter.search(text) is None:
        return
    for a, b in windows if windows is not None else [(0, len(text))]:
        for m in _matches(rule, text, a, b):
            s, e = m.span(rule.group)
            claims.add(s, e, rule.kind)


def normalise(text: str) -> str:
    """The text as rules match it: NFKC (full-width digits are digits), zero-width characters removed."""
    if text.isascii():
        return text
    out = _INVISIBLE.sub("", text)
    return out if unicodedata.is_normalized("NFKC", out) else unicodedata.normalize("NFKC", out)


# A JSON string literal holding at least one escape: its decoded value is what a reader sees.
_ESCAPED_STRING = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)+"')
# A base64 blob long enough to hide a key in (standard or URL-safe alphabet).
# Matched from a position: possessively skips short runs and what is not base64, then takes a blob.
_BASE64_SCAN = re.compile(r"(?:[A-Za-z0-9+/]{0,23}+(?:=++|[^A-Za-z0-9+/=]))*+([A-Za-z0-9+/]{24,}={0,2})")


def _split_strings(text: str, depth: int, counts: Counter[str]) -> tuple[list[str], list[str | None], list[str]] | None:
    """Text cut at its escaped JSON string literals: the pieces to match (literals decoded, normalised,
    their own inner literals redacted), each piece's literal as written (None between literals), and
    each decoded value before redaction. None: no such literal."""
    pieces: list[str] = []
    raw: list[str | None] = []
    bases: list[str] = []
    last = 0
    for m in _ESCAPED_STRING.finditer(text):
        try:
            value = json.loads(m.group(0))
        except ValueError:
            continue
        if not isinstance(value, str) or _SENTINEL in value:
            continue
        base = value = normalise(value)  # "\u200b" escapes decode to what normalising removes
        if "\\" in value and depth + 1 < _MAX_DEPTH:  # JSON inside a JSON string: its own literals first
            value, inner = _redact(value, depth + 1)
            counts.update(inner)
        between = text[last:m.start()]
        pieces += (between, value)
        raw += (None, m.group(0))
        bases += (between, base)
        last = m.end()
    if not pieces:
        return None
    pieces.append(text[last:])
    raw.append(None)
    bases.append(text[last:])
    return pieces, raw, bases


def _printable(raw: bytes) -> str | None:
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    ok = sum(c.isprintable() or c in "\n\r\t" for c in s)
    return s if s and ok >= 0.95 * len(s) else None


def _base64_blobs(text: str):
    """Base64 runs of 24+ characters, found in one linear pass (a plain search retries inside every word)."""
    pos = 0
    while True:
        m = _BASE64_SCAN.match(text, pos)
        if m is None:
            return
        yield m
        pos = m.end()


def _decoded_base64(text: str, depth: int, counts: Counter[str]) -> str:
    """Text with base64 blobs that decode to text holding a secret replaced by that secret's placeholder."""
    parts: list[str] = []
    last = 0
    for m in _base64_blobs(text):
        blob = m.group(1)
        s = m.start(1)
        if s and text[s - 1] in "_-":
            continue
        stripped = blob.rstrip("=")
        if len(stripped) % 4 == 1 or not (any(c.isdigit() or c.isupper() for c in stripped)
                                           and any(c.islower() for c in stripped)):
            continue
        try:
            raw = base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        decoded = _printable(raw)
        if decoded is None:
            continue
        _, inner = _redact(decoded, depth + 1)
        if not inner:
            continue
        kind = max(sorted(inner), key=inner.__getitem__)
        counts[kind] += 1
        parts += (text[last:s], f"[{kind}]")
        last = m.end(1)
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


def _rules_pass(text: str, depth: int, counts: Counter[str]) -> str:
    keywords = _Keywords(text)
    claims = _Claims()
    for rule in rules():
        _apply(rule, text, keywords, claims)
    if claims.spans:
        text = claims.apply(text, counts)
    if depth < _MAX_DEPTH:
        text = _decoded_base64(text, depth, counts)
    return text


def _redact(text: str, depth: int = 0) -> tuple[str, Counter[str]]:
    counts: Counter[str] = Counter()
    if not text:
        return text, counts
    original = text
    text = normalise(text)
    split = _split_strings(text, depth, counts) if depth < _MAX_DEPTH and "\\" in text else None
    if split is None:
        text = _rules_pass(text, depth, counts)
        return (text if counts else original), counts
    # One pass over the text with its escaped string literals decoded in place, each piece apart
    # (no rule matches across the sentinel); a changed literal is written back as JSON.
    pieces, raw, bases = split
    joined = _rules_pass(_SENTINEL.join(pieces), depth, counts)
    if not counts:
        return original, counts
    out = joined.split(_SENTINEL)
    if len(out) != len(pieces):  # a rule crossed a piece boundary: each piece alone
        out = [_rules_pass(p, depth, counts) for p in pieces]
    return "".join(new if r is None else (r if new == base else json.dumps(new, ensure_ascii=False))
                   for new, r, base in zip(out, raw, bases)), counts


def redact(
    text: str, extra_patterns: dict[str, str] | None = None, builtin: bool = True
) -> tuple[str, dict[str, int]]:
    """Text with secrets/PII replaced by "[KIND]" placeholders, and how many of each.

    extra_patterns maps a name to a regex (from config); its matches become "[NAME]".
    They run after the built-in rules; builtin=False runs only them.
    """
    counts: Counter[str] = Counter()
    if builtin:
        text, counts = _redact(text)
    if extra_patterns:
        for rule in _extra_rules(tuple(sorted(extra_patterns.items()))):
            claims = _Claims()
            _apply(rule, text, None, claims)
            text = claims.apply(text, counts) if claims.spans else text
    return text, dict(counts)


def redact_many(texts: list[str], extra_patterns: dict[str, str] | None = None) -> tuple[list[str], dict[str, int]]:
    """Each text redacted on its own, in one pass over them all when no rule crosses from one to the next."""
    if not texts:
        return [], {}
    if not any(_SENTINEL in t for t in texts):
        joined, counts = redact(_SENTINEL.join(texts), extra_patterns)
        if not counts:
            return list(texts), {}
        out = joined.split(_SENTINEL)
        if len(out) == len(texts):
            return out, counts
    total: Counter[str] = Counter()
    out = []
    for t in texts:
        new, c = redact(t, extra_patterns)
        out.append(new)
        total.update(c)
    return out, dict(total)


_KEEP_KEYS = frozenset({"id", "parent_id", "trace_id", "project", "type", "format", "role", "name", "start_time",
                        "end_time", "started_at", "tool_call_id", "version"})


def redact_value(value: Any, extra_patterns: dict[str, str] | None = None) -> tuple[Any, dict[str, int]]:
    """A JSON value with every string in it redacted (ids, types, roles and times under their keys kept).

    Counts are of distinct strings (a secret re-sent in every LLM call's history counts once)."""
    strings: list[str] = []

    def collect(v: Any, key: str | None) -> None:
        if isinstance(v, str):
            if key not in _KEEP_KEYS:
                strings.append(v)
        elif isinstance(v, dict):
            for k, x in v.items():
                collect(x, k)
        elif isinstance(v, list):
            for x in v:
                collect(x, key if key != "metadata" else None)

    collect(value, None)
    # Agent traces log the same history again with every call: each distinct string is redacted once.
    unique = list(dict.fromkeys(strings))
    new, counts = redact_many(unique, extra_patterns)
    if not counts:
        return value, {}
    changed = {old: red for old, red in zip(unique, new) if red != old}

    def rebuild(v: Any, key: str | None) -> Any:
        if isinstance(v, str):
            return changed.get(v, v) if key not in _KEEP_KEYS else v
        if isinstance(v, dict):
            return {k: rebuild(x, k) for k, x in v.items()}
        if isinstance(v, list):
            return [rebuild(x, key if key != "metadata" else None) for x in v]
        return v

    return rebuild(value, None), counts
