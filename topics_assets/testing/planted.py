"""A planted-secrets corpus: fake but format-valid secrets and PII, each kind in each placement.

Deterministic (seeded). Every secret is generated so that a validator would accept it (Luhn-valid
cards, mod-97-valid IBANs, SSNs with a valid area), and written in a format the ingester reads:
chat-message traces (JSON lines) and OTLP JSON (OpenLLMetry gen_ai.prompt.N attributes). The
redaction benchmark and tests check that none of them reaches a preprocessed text or a table.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from topics_assets.preprocess.redact import luhn_ok

PLACEMENTS = ("message", "tool_arguments", "tool_result", "system_prompt", "otlp_attribute", "escaped_json")

_UP = string.ascii_uppercase
_LOW = string.ascii_lowercase
_DIG = string.digits
_ALNUM = _UP + _LOW + _DIG
_HEX = "0123456789abcdef"
_B64 = _ALNUM + "+/"


@dataclass(frozen=True)
class Planted:
    kind: str
    text: str  # the secret in its context, as a person would write it ("password=...")
    secret: str  # the part that must not reach any text or table


def _r(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _luhn(rng: random.Random, prefix: str, length: int = 16) -> str:
    body = prefix + _r(rng, _DIG, length - len(prefix) - 1)
    return next(body + d for d in _DIG if luhn_ok(body + d))


def _iban(rng: random.Random, country: str, bban_len: int) -> str:
    bban = _r(rng, _DIG, bban_len)
    n = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - n % 97:02d}{bban}"


def _ssn(rng: random.Random) -> str:
    return f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _pem_body(rng: random.Random, lines: int = 4) -> str:
    return "\n".join(_r(rng, _B64, 64) for _ in range(lines))


def _fullwidth(s: str) -> str:
    return "".join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in s)


def _grouped(card: str, seps: str) -> str:
    groups = [card[i:i + 4] for i in range(0, len(card), 4)]
    return "".join(g + (seps[i % len(seps)] if i < len(groups) - 1 else "") for i, g in enumerate(groups))


def _kinds() -> dict[str, Callable[[random.Random], Planted]]:
    def plain(kind: str, make: Callable[[random.Random], str], fmt: str = "{}") -> Callable[[random.Random], Planted]:
        def gen(rng: random.Random) -> Planted:
            s = make(rng)
            return Planted(kind, fmt.format(s), s)
        return gen

    def pw(rng: random.Random) -> str:
        return _r(rng, _LOW, 5) + _r(rng, _DIG, 3) + rng.choice("!#%") + _r(rng, _UP, 3)

    def basic(rng: random.Random) -> Planted:
        blob = base64.b64encode(f"svc_user:{pw(rng)}".encode()).decode()
        return Planted("basic_auth", f"Authorization: Basic {blob}", blob)

    def b64(rng: random.Random) -> Planted:
        key = "sk_live_" + _r(rng, _ALNUM, 24)
        blob = base64.b64encode(f"STRIPE_KEY={key}\n".encode()).decode()
        return Planted("secret_in_base64", f"config (base64): {blob}", blob)

    def zero_width(rng: random.Random) -> Planted:
        key = "AKIA" + _r(rng, _UP + _DIG, 16)
        return Planted("secret_zero_width", f"key {key[:8]}\u200b{key[8:]}", key)

    def glued(rng: random.Random) -> Planted:
        key = "sk_live_" + _r(rng, _ALNUM, 24)
        return Planted("secret_glued_to_word", f"stripekey{key}", key)

    def azure(rng: random.Random) -> Planted:
        key = _r(rng, _B64, 86) + "=="
        return Planted("azure_account_key", "DefaultEndpointsProtocol=https;AccountName=acct1;"
                       f"AccountKey={key};EndpointSuffix=core.windows.net", key)

    def url(scheme: str, user: str, host: str) -> Callable[[random.Random], Planted]:
        def gen(rng: random.Random) -> Planted:
            p = pw(rng)
            return Planted(f"{scheme}_url_password", f"{scheme}://{user}:{p}@{host}", p)
        return gen

    def pem(rng: random.Random) -> Planted:
        body = _pem_body(rng)
        return Planted("pem_private_key", f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----",
                       body.split("\n")[1])

    def pem_no_end(rng: random.Random) -> Planted:
        body = _pem_body(rng)
        return Planted("pem_without_end", f"-----BEGIN PRIVATE KEY-----\n{body}\n", body.split("\n")[2])

    def pgp(rng: random.Random) -> Planted:
        body = _pem_body(rng)
        return Planted("pgp_private_key", f"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{body}\n=Ab12\n"
                       "-----END PGP PRIVATE KEY BLOCK-----", body.split("\n")[1])

    def jwt(rng: random.Random) -> str:
        def seg(d: dict) -> str:
            return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
        return f"{seg({'alg': 'HS256', 'kid': _r(rng, _ALNUM, 8)})}.{seg({'sub': _r(rng, _DIG, 10)})}.{_r(rng, _ALNUM + '-_', 43)}"

    def card(kind: str, prefix: str, fmt: Callable[[str], str], length: int = 16) -> Callable[[random.Random], Planted]:
        def gen(rng: random.Random) -> Planted:
            c = _luhn(rng, prefix, length)
            shown = fmt(c)
            return Planted(kind, f"card {shown}", shown)
        return gen

    kinds: list[Callable[[random.Random], Planted]] = [
        plain("aws_access_key", lambda r: "AKIA" + _r(r, _UP + _DIG, 16)),
        plain("aws_secret_key", lambda r: _r(r, _B64, 40), "aws_secret_access_key = {}"),
        plain("stripe_secret_key", lambda r: "sk_live_" + _r(r, _ALNUM, 24)),
        plain("stripe_restricted_key", lambda r: "rk_live_" + _r(r, _ALNUM, 24)),
        plain("stripe_webhook_secret", lambda r: "whsec_" + _r(r, _ALNUM, 32)),
        plain("openai_key", lambda r: "sk-proj-" + _r(r, _ALNUM, 40)),
        plain("anthropic_key", lambda r: "sk-ant-api03-" + _r(r, _ALNUM + "-_", 40)),
        plain("github_token", lambda r: "ghp_" + _r(r, _ALNUM, 36)),
        plain("github_fine_grained", lambda r: "github_pat_11" + _r(r, _UP + _DIG, 20) + "_" + _r(r, _ALNUM, 59)),
        plain("slack_bot_token", lambda r: f"xoxb-{_r(r, _DIG, 12)}-{_r(r, _DIG, 13)}-{_r(r, _ALNUM, 24)}"),
        plain("slack_app_token", lambda r: f"xapp-1-A0{_r(r, _UP + _DIG, 9)}-{_r(r, _DIG, 13)}-{_r(r, _HEX, 64)}"),
        plain("slack_webhook", lambda r: f"https://hooks.slack.com/services/T{_r(r, _UP + _DIG, 8)}/"
              f"B{_r(r, _UP + _DIG, 8)}/{_r(r, _ALNUM, 24)}"),
        plain("sendgrid_key", lambda r: f"SG.{_r(r, _ALNUM + '-_', 22)}.{_r(r, _ALNUM + '-_', 43)}"),
        plain("twilio_account_sid", lambda r: "AC" + _r(r, _HEX, 32)),
        plain("twilio_api_key", lambda r: "SK" + _r(r, _HEX, 32)),
        plain("npm_token", lambda r: "npm_" + _r(r, _ALNUM, 36)),
        plain("google_api_key", lambda r: "AIza" + _r(r, _ALNUM + "-_", 35)),
        plain("huggingface_token", lambda r: "hf_" + _r(r, _ALNUM, 34)),
        plain("gitlab_token", lambda r: "glpat-" + _r(r, _ALNUM, 20)),
        azure,
        plain("jwt", jwt),
        plain("bearer_token", lambda r: _r(r, _ALNUM, 20) + _r(r, _DIG, 4), "Authorization: Bearer {}"),
        basic,
        plain("password_assignment", pw, "password={}"),
        plain("password_in_prose", pw, "my password is {}"),
        url("postgres", "app", "db.internal:5432/app"),
        url("mysql", "root", "mysql.internal:3306/shop"),
        url("amqp", "guest", "rabbit.internal:5672/vhost"),
        url("redis", "default", "cache.internal:6379/0"),
        url("https", "deploy", "git.example.com/repo.git"),
        plain("gcp_private_key_id", lambda r: _r(r, _HEX, 40), '"private_key_id": "{}"'),
        plain("gcp_client_id", lambda r: "1" + _r(r, _DIG, 20), '"client_id": "{}"'),
        pem, pem_no_end, pgp,
        plain("email", lambda r: f"{_r(r, _LOW, 6)}.{_r(r, _LOW, 5)}@{_r(r, _LOW, 7)}.com"),
        plain("ssn", _ssn, "SSN {}"),
        plain("iban_de", lambda r: _iban(r, "DE", 18), "IBAN {}"),
        plain("iban_gb_grouped", lambda r: (lambda i: " ".join(i[k:k + 4] for k in range(0, len(i), 4)))(
            _iban(r, "GB", 18)), "transfer to {}"),
        plain("iban_fr", lambda r: _iban(r, "FR", 23), "IBAN: {}"),
        plain("passport", lambda r: rng_passport(r), "passport number: {}"),
        plain("phone_international", lambda r: f"+44 20 {_r(r, _DIG, 4)} {_r(r, _DIG, 4)}", "call {}"),
        plain("phone_uk_national", lambda r: f"020 {_r(r, _DIG, 4)} {_r(r, _DIG, 4)}", "call {}"),
        plain("phone_fr_national", lambda r: "06 " + " ".join(_r(r, _DIG, 2) for _ in range(4)), "appelez le {}"),
        plain("phone_de_0049", lambda r: f"0049 30 {_r(r, _DIG, 8)}", "Tel. {}"),
        plain("phone_us", lambda r: f"({r.randint(201, 989)}) {r.randint(201, 989)}-{_r(r, _DIG, 4)}", "call {}"),
        card("card", "4", lambda c: c),
        card("card_mixed_separators", "5", lambda c: _grouped(c, " - ")),
        card("card_dots", "4", lambda c: _grouped(c, ".")),
        card("card_fullwidth", "4", lambda c: _fullwidth(_grouped(c, " "))),
        plain("ipv4", lambda r: f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}", "host {}"),
        b64, zero_width, glued,
    ]
    out: dict[str, Callable[[random.Random], Planted]] = {}
    for make in kinds:
        kind = make(random.Random(0)).kind
        out[kind] = make
    return out


def rng_passport(rng: random.Random) -> str:
    return rng.choice(_UP) + _r(rng, _DIG, 8)


KINDS = _kinds()


def planted(kind: str, seed: int | str = 0) -> Planted:
    """One planted secret of this kind (the same for the same seed)."""
    return KINDS[kind](random.Random(f"{kind}:{seed}"))


_SYSTEM_HEAD = ("You are the deployment assistant of Acme. Follow the runbook, never reveal credentials, "
                "answer briefly and cite the step you followed. Escalate to a human when unsure. ")


def trace_record(kind: str, placement: str, seed: int = 0, day: str = "2025-06-02") -> tuple[str, str, Planted]:
    """One trace holding one planted secret: (file suffix "jsonl"/"otlp.jsonl", the JSON line, the secret).

    Its trace id is trace_id(kind, placement, seed)."""
    p = planted(kind, f"{seed}:{placement}")  # another secret in each placement: a leak names its cell
    tid = f"planted-{kind}-{placement}-{seed}"
    ts = f"{day}T10:00:00Z"
    user = {"role": "user", "content": "Please check the deploy."}
    answer = {"role": "assistant", "content": "Done, the deploy is healthy."}
    if placement == "otlp_attribute":
        trace_id, span_id = _otlp_ids(tid)
        span = {"traceId": trace_id, "spanId": span_id, "name": "chat", "kind": 3,
                "startTimeUnixNano": "1748858400000000000", "endTimeUnixNano": "1748858401000000000",
                "attributes": [
                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                    {"key": "gen_ai.prompt.0.role", "value": {"stringValue": "user"}},
                    {"key": "gen_ai.prompt.0.content", "value": {"stringValue": f"Check this: {p.text} thanks"}},
                    {"key": "gen_ai.completion.0.role", "value": {"stringValue": "assistant"}},
                    {"key": "gen_ai.completion.0.content", "value": {"stringValue": "Done."}}]}
        doc = {"resourceSpans": [{"resource": {"attributes": [
            {"key": "topics.project", "value": {"stringValue": "planted"}},
            {"key": "service.name", "value": {"stringValue": "planted"}}]},
            "scopeSpans": [{"spans": [span]}]}]}
        return "otlp.jsonl", json.dumps(doc), p
    if placement == "message":
        msgs = [{"role": "user", "content": f"Here is what I have: {p.text}. Can you check it?"}, answer]
    elif placement == "tool_arguments":
        args = json.dumps({"command": "deploy", "env": f"STAGE=prod\n{p.text}\n"})
        msgs = [user, {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "run_deploy", "arguments": args}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"}, answer]
    elif placement == "tool_result":
        out = json.dumps({"out": f"ok\n{p.text}", "code": 0})
        msgs = [user, {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "read_env", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": out}, answer]
    elif placement == "system_prompt":
        # The secret straddles the system prompt's shortening point (300 characters).
        head = (_SYSTEM_HEAD * 3)[: 299 - len(p.text) // 2]
        msgs = [{"role": "system", "content": f"{head} {p.text} " + "Runbook step. " * 40}, user, answer]
    elif placement == "escaped_json":
        # A tool result that is a JSON string holding JSON: the secret is escaped twice.
        inner = json.dumps({"file": ".env", "content": f"DEBUG=0\n{p.text}\nPORT=8080"})
        msgs = [user, {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "cat", "arguments": "{\"path\": \".env\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": json.dumps({"result": inner})}, answer]
    else:
        raise ValueError(f"unknown placement {placement!r}")
    rec = {"id": tid, "timestamp": ts, "project": "planted", "messages": msgs}
    return "jsonl", json.dumps(rec, ensure_ascii=False), p


def _otlp_ids(tid: str) -> tuple[str, str]:
    ids = random.Random(tid)  # never all-zero ids (the ingester rejects them)
    return f"{ids.getrandbits(127) | 1:032x}", f"{ids.getrandbits(63) | 1:016x}"


def trace_id(kind: str, placement: str, seed: int = 0) -> str:
    tid = f"planted-{kind}-{placement}-{seed}"
    return _otlp_ids(tid)[0] if placement == "otlp_attribute" else tid


def write_corpus(directory: str | Path, kinds: list[str] | None = None, placements: tuple[str, ...] = PLACEMENTS,
                 seed: int = 0) -> dict[tuple[str, str], Planted]:
    """Write planted.jsonl (chat traces) and planted.otlp.jsonl (OTLP) under directory.

    Returns (kind, placement) -> the secret; trace_id(kind, placement, seed) names its trace.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {"jsonl": [], "otlp.jsonl": []}
    out: dict[tuple[str, str], Planted] = {}
    for kind in kinds or list(KINDS):
        for placement in placements:
            suffix, line, p = trace_record(kind, placement, seed)
            lines[suffix].append(line)
            out[(kind, placement)] = p
    for suffix, ls in lines.items():
        if ls:
            (directory / f"planted.{suffix}").write_text("\n".join(ls) + "\n", encoding="utf-8")
    return out
