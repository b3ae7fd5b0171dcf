"""Replace secrets and PII with placeholders before any text leaves for an LLM.

One precompiled pass per kind, most specific first, so that a secret is not
half-eaten by a broader pattern (an API key's digits are never a phone number).
Ambiguous matches are validated in code: a digit run that fails the Luhn check
is not a card, "::" in C++ is not an IPv6 address.

Speed: Python's regex engine skips ahead fast only when a pattern starts with a
literal or a character class, so no pattern starts with a look-behind; the
"not preceded by" checks run in code on the (rare) matches instead. Patterns
whose first character is common (emails, IPs) are searched from a rarer literal
anchor inside them ("@", ".d.d.d", ":x:") and extended backwards.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache


def luhn_ok(digits: str) -> bool:
    """The checksum every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _preceded_by(m: re.Match[str], chars: str, word: bool = True) -> bool:
    i = m.start()
    if i == 0:
        return False
    c = m.string[i - 1]
    return c in chars or (word and (c.isalnum() or c == "_"))


def _word_start(m: re.Match[str]) -> bool:
    return not _preceded_by(m, "")


def _bearer_ok(m: re.Match[str]) -> bool:
    # Real tokens mix in digits; "bearer authentication" in prose does not.
    return _word_start(m) and any(c.isdigit() for c in m.group(1))


def _email_ok(m: re.Match[str]) -> bool:
    return not _preceded_by(m, ".%+-")


def _card_ok(m: re.Match[str]) -> bool:
    if _preceded_by(m, ".-"):  # not the tail of a decimal, an id or a longer number
        return False
    digits = re.sub(r"\D", "", m.group(0))
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _intl_phone_ok(m: re.Match[str]) -> bool:
    return not _preceded_by(m, "+") and 8 <= sum(c.isdigit() for c in m.group(0)) <= 15


def _us_phone_ok(m: re.Match[str]) -> bool:
    return not _preceded_by(m, ".+-")


def _ipv6_ok(m: re.Match[str]) -> bool:
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


def _ipv4_ok(m: re.Match[str]) -> bool:
    return not _preceded_by(m, ".")


@dataclass(frozen=True)
class _Rule:
    kind: str
    pattern: re.Pattern[str]
    check: Callable[[re.Match[str]], bool] = _word_start
    needles: tuple[str, ...] = ()  # skip the pass when none of these occurs
    # Skip the pass when this (fast, class-led) regex finds nothing: for patterns
    # that begin with an alternation, which the regex engine cannot skip ahead on.
    prefilter: re.Pattern[str] | None = None
    # When a match fails its check, retry it shorter, cut at its last space or dash:
    # "4111 1111 1111 1111 2024" is a card followed by a year, not a 20-digit number.
    shrink: bool = False
    # Search from a fast literal-led anchor that every match contains; `back`
    # (ending in \Z) finds how far before the anchor the match starts.
    anchor: re.Pattern[str] | None = None
    back: re.Pattern[str] | None = None


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

_RULES = [
    _Rule(
        "PRIVATE_KEY",
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.{0,20000}?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL),
        needles=("PRIVATE KEY",),
    ),
    _Rule(
        "BEARER_TOKEN",
        re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr]\s+([A-Za-z0-9._~+/=-]{12,})"),
        _bearer_ok,
        needles=("earer", "EARER"),
    ),
    _Rule(
        "API_KEY",
        re.compile(
            r"(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"
            r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
            r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}"
            r"|xox[abposr]-[A-Za-z0-9-]{10,}"
            r"|AIza[0-9A-Za-z_-]{35}"
            r"|hf_[A-Za-z0-9]{30,}"
            r"|glpat-[A-Za-z0-9_-]{20,})"
        ),
    ),
    _Rule("JWT", re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), needles=("eyJ",)),
    _Rule(
        "EMAIL",
        re.compile(r"[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
        _email_ok,
        anchor=re.compile("@"),
        back=re.compile(r"[\w.%+-]{1,64}\Z"),
    ),
    _Rule(
        "CARD",
        # Major networks start with 2-6 (which also spares epoch-millisecond timestamps);
        # contiguous, or groups of four with one consistent separator (Amex: 4-6-5).
        re.compile(
            r"[2-6](?:\d{12,18}|\d{3}([ -])\d{4}\1\d{4}\1\d{1,7}(?:\1\d{1,4})?|\d{3}([ -])\d{6}\2\d{5})(?![\d-]|\.\d)"
        ),
        _card_ok,
        shrink=True,
    ),
    _Rule("PHONE", re.compile(r"\+\d(?:[ .()-]{0,2}\d){7,14}(?!\d)"), _intl_phone_ok, needles=("+",)),
    _Rule(
        "PHONE",
        # US: (555) 123-4567, 555-123-4567, 555.123.4567, 1-555-123-4567. A separator is
        # required, so plain order numbers, years and digit runs stay.
        re.compile(
            r"(?:1[ .-](?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]|\(\d{3}\) ?\d{3}[ .-]|\d{3}([ .-])\d{3}\1)\d{4}(?![\w]|[.-]\d)"
        ),
        _us_phone_ok,
        prefilter=re.compile(r"\d{3}[ .-]\d{4}"),  # every US number ends so
    ),
    _Rule(
        "IP",
        re.compile(r"(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:]|\.\d)"),
        _ipv6_ok,
        needles=(":",),
        # From the first colon: a hex/colon run with "::" or eight groups (not "12:30:45").
        anchor=re.compile(r":(?=:|[0-9A-Fa-f:]*::|(?:[0-9A-Fa-f]{0,4}:){6})[0-9A-Fa-f:]*(?![\w:])"),
        back=re.compile(r"[0-9A-Fa-f]{1,4}\Z"),
    ),
    _Rule(
        "IP",
        re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)"),
        _ipv4_ok,
        needles=(".",),
        anchor=re.compile(r"\.\d{1,3}\.\d{1,3}\.\d{1,3}"),
        back=re.compile(r"\d{1,3}\Z"),
    ),
]


def _matches(rule: _Rule, text: str):
    """The rule's accepted matches, left to right, not overlapping."""
    if rule.anchor is None and not rule.shrink:
        for m in rule.pattern.finditer(text):
            if rule.check(m):
                yield m
        return
    if rule.anchor is None:  # shrink: a rejected run may hold a match that starts or ends at one of its separators
        pos = 0
        while True:
            m = rule.pattern.search(text, pos)
            if m is None:
                return
            if not rule.check(m):
                shorter = _shrunk(rule, m)
                if shorter is None:  # try again from its next group: "2024 4111 1111 1111 1111"
                    seps = [i for i in (text.find(" ", m.start() + 1, m.end()), text.find("-", m.start() + 1, m.end()))
                            if i != -1]
                    pos = min(seps) + 1 if seps else m.end()
                    continue
                m = shorter
            yield m
            pos = m.end()
    last = 0
    for a in rule.anchor.finditer(text):
        if a.start() < last:
            continue
        b = rule.back.search(text, max(last, a.start() - 64), a.start())
        m = rule.pattern.match(text, b.start() if b else a.start())
        if m is not None and m.end() > a.start() and rule.check(m):
            last = m.end()
            yield m


def _shrunk(rule: _Rule, m: re.Match[str]) -> re.Match[str] | None:
    """The longest accepted match at m's start that ends before one of m's separators."""
    text, start, end = m.string, m.start(), m.end()
    while True:
        cut = max(text.rfind(" ", start, end), text.rfind("-", start, end))
        if cut <= start:
            return None
        shorter = rule.pattern.match(text, start, cut)
        if shorter is not None and rule.check(shorter):
            return shorter
        end = cut


def _apply(rule: _Rule, text: str, counts: dict[str, int]) -> str:
    if rule.needles and not any(n in text for n in rule.needles):
        return text
    if rule.prefilter is not None and rule.prefilter.search(text) is None:
        return text
    parts: list[str] = []
    last = 0
    for m in _matches(rule, text):
        parts += (text[last : m.start()], f"[{rule.kind}]")
        last = m.end()
    if not parts:
        return text
    counts[rule.kind] = counts.get(rule.kind, 0) + len(parts) // 2
    parts.append(text[last:])
    return "".join(parts)


@lru_cache(maxsize=32)
def _extra_rules(items: tuple[tuple[str, str], ...]) -> list[_Rule]:
    return [_Rule(name.upper(), re.compile(pattern), check=lambda m: True) for name, pattern in items]


def redact(
    text: str, extra_patterns: dict[str, str] | None = None, builtin: bool = True
) -> tuple[str, dict[str, int]]:
    """Text with secrets/PII replaced by "[KIND]" placeholders, and how many of each.

    extra_patterns maps a name to a regex (from config); its matches become "[NAME]".
    They run after the built-in rules; builtin=False runs only them.
    """
    counts: dict[str, int] = {}
    rules = (_RULES if builtin else []) + (
        _extra_rules(tuple(sorted(extra_patterns.items()))) if extra_patterns else []
    )
    for rule in rules:
        text = _apply(rule, text, counts)
    return text, counts
