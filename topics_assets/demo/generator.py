"""Seeded synthetic agent traces in the project's span format.

Why this exists: `topics demo` and the tests need realistic production-looking
traces without any network or real customer data. Each record is one
customer-support conversation handled by a tool-using agent:

* a root ``task`` span ("support-agent"),
* 2-6 ``llm`` spans, each re-sending the whole growing history (as real
  chat-completion loops do, which is what the preprocessor must de-duplicate),
* ``tool`` spans for every tool call (some failing, in the families whose
  backends are flaky),
* a ``score`` span from an online evaluator, which a preprocessor must drop.

Ground truth lives in ``labels`` ({"scenario", "sentiment", "outcome"}).

Everything is drawn from one ``random.Random`` per trace, seeded with
``f"{seed}:{i}"``, so output is deterministic for a seed and trace *i* does not
depend on how many traces were asked for. The scenario families (wording, tools,
weights) are data in families.yaml; this module turns them into traces.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import json
import os
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml

__all__ = [
    "LAUNCH_FAMILY",
    "OUTAGE_FAMILY",
    "generate_traces",
    "write_jsonl",
    "SCENARIOS",
    "SENTIMENTS",
    "OUTCOMES",
    "TOOL_ERROR_FAMILIES",
]

SENTIMENTS = ["satisfied", "neutral", "confused", "frustrated", "angry"]
OUTCOMES = ["resolved", "escalated", "tool_error", "gave_up"]

MAX_LLM_SPANS = 6

# --------------------------------------------------------------------------
# Slot pools: the nouns that make first requests varied within a family.
# --------------------------------------------------------------------------

FIRST_NAMES = [
    "jane", "john", "maria", "wei", "aisha", "carlos", "emma", "liam", "sofia", "noah",
    "priya", "omar", "chloe", "lucas", "yuki", "fatima", "daniel", "olivia", "mateo", "hannah",
    "ivan", "grace", "kofi", "ana", "ben", "leila", "tom", "nina", "raj", "sara",
]
LAST_NAMES = [
    "doe", "smith", "garcia", "chen", "khan", "silva", "johnson", "brown", "rossi", "muller",
    "patel", "haddad", "martin", "costa", "tanaka", "ali", "kim", "nguyen", "lopez", "wilson",
    "petrov", "oconnor", "mensah", "santos", "clark", "farah", "baker", "novak", "mehta", "berg",
]
EMAIL_DOMAINS = ["example.com", "example.org", "mail.example.net", "example.co.uk"]

PRODUCTS = [
    "wireless earbuds", "standing desk", "espresso machine", "air fryer", "robot vacuum",
    "4K monitor", "mechanical keyboard", "running shoes", "winter jacket", "smart watch",
    "office chair", "blender", "electric toothbrush", "yoga mat", "noise-cancelling headphones",
    "coffee grinder", "gaming mouse", "backpack", "phone case", "bluetooth speaker",
    "digital camera", "tablet stand", "desk lamp", "cast iron skillet", "hiking boots",
    "kids' bike", "air purifier", "e-reader", "smart thermostat", "portable charger",
    "sofa cushion set", "baby monitor", "electric kettle", "laptop sleeve", "dash cam",
]
COLORS = ["black", "white", "navy", "red", "forest green", "grey", "sand", "blue"]
SIZES = ["S", "M", "L", "XL", "9", "10.5", "42", "44"]

CITIES = [  # (city, airport code)
    ("New York", "JFK"), ("Chicago", "ORD"), ("San Francisco", "SFO"), ("Seattle", "SEA"),
    ("Boston", "BOS"), ("Austin", "AUS"), ("Denver", "DEN"), ("Miami", "MIA"),
    ("Toronto", "YYZ"), ("London", "LHR"), ("Paris", "CDG"), ("Berlin", "BER"),
    ("Madrid", "MAD"), ("Rome", "FCO"), ("Amsterdam", "AMS"), ("Dublin", "DUB"),
    ("Lisbon", "LIS"), ("Tokyo", "HND"), ("Singapore", "SIN"), ("Sydney", "SYD"),
    ("Mexico City", "MEX"), ("Vancouver", "YVR"), ("Atlanta", "ATL"), ("Los Angeles", "LAX"),
]
AIRLINES = [  # (name, IATA code)
    ("United", "UA"), ("Delta", "DL"), ("Air Canada", "AC"), ("Lufthansa", "LH"),
    ("KLM", "KL"), ("British Airways", "BA"), ("JetBlue", "B6"), ("Iberia", "IB"),
]
HOTELS = [
    "Grand Central Hotel", "Harborview Inn", "The Riverside", "Hilltop Suites",
    "Parkside Lodge", "Hotel Aurora", "Citylight Hotel", "The Maple Residence",
    "Seaside Grand", "Old Town Boutique Hotel",
]
DEVICES = [
    "iPhone 15", "iPhone 13", "Pixel 8", "Galaxy S23", "Galaxy A54", "iPad Air",
    "Windows 11 laptop", "MacBook Pro", "Chromebook", "OnePlus 11",
]
APP_SCREENS = [
    "the checkout page", "the login screen", "my order history", "the settings page",
    "the barcode scanner", "the map view", "the notifications tab", "the wishlist",
]
SUBSCRIPTIONS = [
    "Acme Prime", "Acme Music", "Acme Cloud 200 GB", "Acme+ Streaming",
    "Acme Travel Pass", "Acme Fitness",
]
PLAN_TIERS = ["Basic", "Plus", "Pro", "Business", "Enterprise"]
COUPON_WORDS = ["SPRING", "WELCOME", "SAVE", "FALLDEAL", "VIP", "FREESHIP", "HOLIDAY", "FLASH", "BACK2SCHOOL"]
STORES = [
    "Downtown Seattle", "Austin Domain", "Brooklyn", "Chicago Loop", "SoHo",
    "Toronto Eaton Centre", "Denver Cherry Creek", "Miami Beach", "Back Bay", "Union Square",
]
STREETS = ["Maple", "Oak", "Cedar", "Elm", "Harbor", "Sunset", "Lakeview", "Mill", "Park", "Willow"]
STREET_KINDS = ["St", "Ave", "Rd", "Blvd", "Lane", "Drive"]
CARRIERS = ["UPS", "FedEx", "DHL", "USPS", "Canada Post"]
SHIP_STATUSES = [  # (api code, human words)
    ("in_transit", "in transit"),
    ("out_for_delivery", "out for delivery today"),
    ("delayed", "delayed at a sorting facility"),
    ("at_local_depot", "at your local depot"),
]
HELP_TITLES = [
    "Understanding your bill", "What is a verification code?", "Managing your memberships",
    "Finding past orders", "Getting started with the Acme app",
]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
UPPER_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

# Support traffic by hour of day (UTC): busy in business hours, thin at night.
HOUR_WEIGHTS = [2, 1, 1, 1, 1, 2, 3, 5, 8, 10, 11, 11, 10, 11, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2]


# --------------------------------------------------------------------------
# Scenario families. Openers are the first user request (what clusters);
# `details` answer the agent's clarifying question; tools/results are
# templates filled from the same per-trace slots so the story is consistent.
# A string that is exactly "{slot}" is replaced by the raw slot value
# (so numbers stay numbers in tool args/results).
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    name: str
    args: dict
    result: dict


@dataclass(frozen=True)
class Family:
    name: str
    topic: str  # plain words for escalation summaries
    team: str  # who a human hand-off goes to
    system: str  # the backend named when apologising for errors
    action: str  # what the agent could not do when the backend failed
    openers: tuple  # str, or (str, {slot overrides}) when the wording fixes a slot
    ask: str  # clarifying question
    details: tuple  # noun phrases the user answers the question with
    tools: tuple  # Tool, run in order
    resolve: tuple  # final assistant replies on success
    weight: float = 1.0
    errors: tuple = ()  # tool errors; non-empty only for families with flaky backends
    flaky_tool: str | None = None
    always_fails: bool = False  # the "failing tool calls" family: every trace sees an error
    demands_human: bool = False  # the user asked for a human in the first message
    always_ask: bool = False
    sentiments: dict | None = None  # override of SENTIMENT_WEIGHTS
    outcomes: dict | None = None  # override of the base outcome weights
    image_p: float = 0.02  # chance the first message carries a screenshot
    parallel_ok: bool = False  # tools are independent, so the agent may call them in one turn


_DOC = yaml.safe_load(resources.files(__package__).joinpath("families.yaml").read_text("utf-8"))


def _load_families(key: str = "families") -> list[Family]:
    """The scenario families, as data in families.yaml (shipped in the package)."""
    doc = _DOC
    shared = {name: Tool(name, t["args"], t["result"]) for name, t in doc["tools"].items()}
    families = []
    for raw in doc[key]:
        f = dict(raw)
        f["openers"] = tuple(o if isinstance(o, str) else (o["text"], o["slots"]) for o in f["openers"])
        f["tools"] = tuple(shared[t] if isinstance(t, str) else Tool(t["name"], t["args"], t["result"])
                           for t in f["tools"])
        for key in ("details", "resolve", "errors"):
            if key in f:
                f[key] = tuple(f[key])
        families.append(Family(**f))
    return families


FAMILIES: list[Family] = _load_families()  # drawn by weight on every day

# Planted on the last day of a window of at least PLANTED["min_days"] days (families.yaml, `planted`): a payment
# gateway outage lifts one family from a small baseline share to a large one, every payment call failing at
# first, and a family never seen before arrives. Each trace decides with its own seeded draw, apart from the
# draws above, so a trace these do not take is byte for byte the one the generator always made.
PLANTED: dict = _DOC["planted"]
PLANTED_FAMILIES: dict[str, Family] = {f.name: f for f in _load_families("planted_families")}
OUTAGE_FAMILY: str = PLANTED["outage"]["family"]
LAUNCH_FAMILY: str = PLANTED["launch"]["family"]
_OUTAGE = dataclasses.replace(PLANTED_FAMILIES[OUTAGE_FAMILY], always_fails=True,
                              outcomes=dict(PLANTED["outage"]["outcomes"]))

SCENARIOS: list[str] = [f.name for f in FAMILIES] + list(PLANTED_FAMILIES)
TOOL_ERROR_FAMILIES: list[str] = [f.name for f in [*FAMILIES, *PLANTED_FAMILIES.values()] if f.errors]

# The penultimate day of the window has an inventory outage: more failing-tool
# traffic, so a topic map over days has a visible spike to find.
INCIDENT_FAMILY = "inventory_check_tool_failure"
INCIDENT_MULTIPLIER = 4.0

SENTIMENT_WEIGHTS = {"satisfied": 0.22, "neutral": 0.36, "confused": 0.12, "frustrated": 0.19, "angry": 0.11}
BASE_OUTCOMES = {"resolved": 0.66, "escalated": 0.14, "gave_up": 0.10, "tool_error": 0.10}
# How sentiment shifts outcomes: happy users mostly got resolved, angry ones escalate.
SENTIMENT_OUTCOME_BIAS = {
    "satisfied": {"resolved": 1.6, "escalated": 0.4, "gave_up": 0.4},
    "neutral": {},
    "confused": {"gave_up": 1.8, "escalated": 1.3},
    "frustrated": {"escalated": 1.6, "gave_up": 1.5, "resolved": 0.8},
    "angry": {"escalated": 2.5, "gave_up": 1.5, "resolved": 0.6},
}

# --------------------------------------------------------------------------
# Conversation wording. User lines vary by sentiment; this is where the
# sentiment label becomes visible in the text.
# --------------------------------------------------------------------------

SYSTEM_PROMPT = (
    "You are Acme's customer support assistant for orders, travel bookings, subscriptions and accounts. "
    "Be concise and friendly. Use the tools to look things up before answering; never invent order or booking "
    "details. If a tool fails, retry once, then apologise and suggest trying later. Hand off to a human with "
    "escalate_to_human when the customer asks for one or the request is outside your permissions."
)

GREETINGS = ["", "", "", "", "Hi! ", "Hello. ", "Hey there. ", "Good morning! ", "Hi team. "]
OPENER_MOOD = {  # optional sentence before the request
    "satisfied": ["Hope you're having a good day! ", "Love your service, just one thing. "],
    "neutral": [""],
    "confused": ["Sorry, I'm not sure this is the right place. ", "I'm not very good with computers. "],
    "frustrated": ["Second time asking about this. ", "I've been trying to sort this out all week. ",
                   "Really getting tired of this. "],
    "angry": ["This is ridiculous. ", "I am EXTREMELY unhappy. ", "Third time contacting you!! "],
}
OPENER_TAIL = {
    "satisfied": ["", " Thanks!", " Thanks so much in advance."],
    "neutral": ["", "", " Thanks."],
    "confused": ["", " Not sure what to do.", " Is that something you can help with?"],
    "frustrated": ["", " Please sort this out.", " This needs fixing today."],
    "angry": [" Fix it NOW.", " Unacceptable.", " I want this solved TODAY."],
}
DETAIL_REPLY = {  # {d}: detail phrase, {D}: the same capitalised
    "satisfied": ["Sure! It's {d}.", "Of course, {d}. Thanks for helping!", "Yes, {d} :)"],
    "neutral": ["{D}", "It's {d}.", "{D}."],
    "confused": ["Um, I think it's {d}? Not sure where to find that.",
                 "Is it {d}? Sorry, I'm not great with this stuff.", "I'm not sure... maybe {d}?"],
    "frustrated": ["I already told you, it's {d}.", "{D}. Can we speed this up?",
                   "It's {d}. I've been at this for 20 minutes."],
    "angry": ["{D}!! How many times do I have to say it?", "It's {d}. FIX THIS.",
              "{D}. Why is this so HARD?? Ridiculous."],
}
CLOSING_USER = {
    "satisfied": ["Perfect, thank you so much!", "That's great, thanks for the quick help!",
                  "Awesome, really appreciate it."],
    "neutral": ["Ok, thanks.", "Got it.", "Alright, that's all I needed."],
    "confused": ["Wait, so do I need to do anything else on my end?",
                 "Sorry, I'm confused. Is it done or do I need to click something?"],
    "frustrated": ["Fine. That took way longer than it should have.", "Ok. Hopefully it actually works this time."],
    "angry": ["About time. This whole experience was TERRIBLE.",
              "Whatever. I'm still furious about how this was handled!!"],
}
CLOSING_AGENT = {
    "satisfied": ["You're welcome! Is there anything else I can help with?", "Happy to help, have a great day!"],
    "neutral": ["You're welcome. Anything else I can do?", "Glad I could help."],
    "confused": ["It's all done; you don't need to do anything else. You'll get a confirmation email shortly."],
    "frustrated": ["I'm sorry it took longer than it should have. Everything is taken care of now."],
    "angry": ["I understand, and I'm sorry for the experience. It's fully resolved now and I've passed your "
              "feedback on to the team."],
}
EXTRA_QUESTION = {
    "satisfied": ["Great! Will I get a confirmation email as well?", "Lovely. How long does that usually take?"],
    "neutral": ["Will I get a confirmation email?", "How long does that take?"],
    "confused": ["Wait, do I need to do anything else? I don't understand.", "Sorry, where will I see that?"],
    "frustrated": ["And how long will that take this time?", "Will I actually get a confirmation this time?"],
    "angry": ["And how long will THAT take? I'm not waiting another month!!",
              "I want it in WRITING. Send me a confirmation."],
}
EXTRA_ANSWER = [
    "Yes, a confirmation email is on its way, and you can also see the update under Account > Activity.",
    "Usually within a few minutes, at most 1-2 business days. You'll get an email as soon as it's done.",
    "Nothing else is needed on your side. You'll find the details under Account > Activity.",
]
TOOL_ERROR_USER = {
    "satisfied": ["No problem, I'll check back later.", "No worries, thanks for trying!"],
    "neutral": ["Ok, when should I try again?", "Alright."],
    "confused": ["So did it work or not? I don't understand.", "I'm confused, what do I do now?"],
    "frustrated": ["Seriously? Your system is down again?", "Great. So I wasted my time."],
    "angry": ["Unbelievable. Your systems are ALWAYS broken.", "This is UNACCEPTABLE. Useless company."],
}
TOOL_ERROR_AGENT = [
    "I'm sorry for the trouble. Our engineers are already looking into it; please try again in about an hour.",
    "Apologies again. Nothing was changed on your account, so you can safely retry later today.",
]
ESCALATE_DEMAND = {
    "satisfied": ["Would it be possible to talk to someone on your team directly?"],
    "neutral": ["Can I speak to a human agent please?", "Can you transfer me to a person?"],
    "confused": ["I don't really understand. Is there a person I can talk to?"],
    "frustrated": ["This isn't helping. Please transfer me to a real person.",
                   "Can I just talk to someone who can actually fix it?"],
    "angry": ["I'm DONE talking to a bot. Get me a manager right now.",
              "Useless. Put a HUMAN on this chat immediately."],
}
GIVE_UP_USER = {
    "satisfied": ["No worries, I'll sort it out myself later. Thanks anyway."],
    "neutral": ["Never mind, I'll do it another time.", "Ok, forget it for now."],
    "confused": ["I don't get it. Forget it, I'll ask my son to help.", "This is too confusing, never mind."],
    "frustrated": ["Forget it. This is way too complicated.", "Never mind. I'll just call instead."],
    "angry": ["Forget it. USELESS. I'm taking my business elsewhere.", "Forget it!! Worst support ever."],
}
GIVE_UP_AGENT = [
    "I understand, and I'm sorry I couldn't do more today. If you change your mind, just reply here and I'll pick "
    "up where we left off.",
    "Sorry for the hassle. Your request is saved, so you can come back any time.",
]
BLOCKERS = [
    "To go further I need to verify your identity. Could you confirm the billing ZIP code and the last four digits "
    "of the card on file?",
    "I can see your request, but this change has to be confirmed from the Account page in the app; I can't do it "
    "from chat.",
    "Before I can do that, please upload a photo of your ID through the secure link I just emailed you.",
    "That option isn't available for your account right now. You could try again after the current billing cycle ends.",
]
ESCALATE_POLICY = [
    "I can see the details, but {topic} cases like this need a specialist's approval. I don't have permission to "
    "make that change.",
    "I've checked, and unfortunately this is outside what I'm able to do from chat.",
]
ESCALATE_PROACTIVE = [
    "This needs a specialist, so I'm transferring you to our {team} team now.",
    "I'm going to hand this to a colleague on the {team} team who can take it from here.",
]
ESCALATE_AFTER_ERROR = [
    "Our {system} isn't responding, so I'm handing this to a colleague on the {team} team who can check manually.",
]
ESCALATE_DONE = [
    "I've passed your conversation to our {team} team (ticket {esc_id}). A specialist will join this chat in about "
    "{wait} minutes; they can see everything we discussed.",
    "You're in the queue for a human agent on the {team} team (reference {esc_id}). Expected wait: {wait} minutes.",
]
ANGRY_ACK = [
    "Thank you, and I'm sorry. I've pulled up your account.",
    "Understood. I'm looking at your account now.",
]
TOOL_PREFACE = ["", "", "Let me look that up.", "One moment while I check.", "Sure, checking now."]
SECOND_TOOL_PREFACE = ["", "Thanks, I can see it. Let me take care of that now.", "Found it. Processing that now."]
RETRY_PREFACE = [
    "That didn't go through. Let me try again.",
    "I got an error from our {system}; retrying now.",
    "One moment, the {system} returned an error. Trying once more.",
]
TOOL_ERROR_APOLOGY = [
    "I'm sorry, our {system} isn't responding right now, so I can't {action} at the moment. Please try again in "
    "about an hour; nothing has been changed on your account.",
    "Apologies, I keep getting an error from our {system} and wasn't able to {action}. Our engineers have been "
    "alerted. Could you try again later today?",
]
SORRY_PREFIX = {"frustrated": "I'm sorry for the hassle. ", "angry": "I'm very sorry about all this. "}
IMAGE_NOTES = [" I've attached a screenshot.", " Screenshot attached.", " See the photo."]

# Realistic PII the redaction stage must catch.
PII_EMAIL = [" My email is {email}.", " You can reach me at {email}.", " (account: {email})"]
PII_PHONE = [" Call me at {phone} if needed.", " My number is {phone}.", " Text me on {phone}."]
PII_CARD = [" The card I used is {card}.", " Card number {card}, if that helps.", " I paid with {card}."]
PII_KEY = [" Here's the header I'm sending: Authorization: Bearer {api_key}",
           " My API key is {api_key} if you need it to check.", " (using key {api_key})"]
KEY_FAMILIES = ("bug_report", "app_troubleshooting")
CARD_FAMILIES = ("billing_dispute", "refund_request")

ORDINALS = ["third", "fourth", "fifth", "sixth"]
LOCK_REASONS = ["too_many_attempts", "suspicious_login", "mfa_failures"]
SEVERITIES = ["low", "medium", "high"]
SCORE_RANGES = {"resolved": (0.7, 1.0), "escalated": (0.35, 0.7), "gave_up": (0.05, 0.4), "tool_error": (0.0, 0.3)}


# --------------------------------------------------------------------------
# Slot generation
# --------------------------------------------------------------------------


def _human_date(d: _dt.date) -> str:
    return f"{MONTHS[d.month - 1]} {d.day}"


def _luhn_check_digit(payload: str) -> str:
    """Check digit that makes payload+digit pass Luhn (so redaction can validate cards)."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def _card_number(rng: random.Random) -> str:
    prefix = rng.choice(["4", "51", "52", "53", "54", "55", "2221"])
    body = prefix + "".join(rng.choice("0123456789") for _ in range(15 - len(prefix)))
    digits = body + _luhn_check_digit(body)
    style = rng.random()
    if style < 0.5:
        return " ".join(digits[k:k + 4] for k in range(0, 16, 4))
    if style < 0.75:
        return "-".join(digits[k:k + 4] for k in range(0, 16, 4))
    return digits


def _phone(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.4:
        return f"+1 ({rng.randint(201, 989)}) 555-01{rng.randint(0, 99):02d}"
    if kind < 0.75:
        return f"{rng.randint(201, 989)}-555-01{rng.randint(0, 99):02d}"
    return f"+44 7700 900{rng.randint(0, 999):03d}"


def _email(rng: random.Random, first: str, last: str) -> str:
    domain = rng.choice(EMAIL_DOMAINS)
    kind = rng.random()
    if kind < 0.5:
        return f"{first}.{last}@{domain}"
    if kind < 0.8:
        return f"{first}{last[0]}{rng.randint(1, 99)}@{domain}"
    return f"{first[0]}{last}@{domain}"


def _code(rng: random.Random, n: int, alphabet: str = UPPER_ALNUM) -> str:
    return "".join(rng.choices(alphabet, k=n))


class _FastRng:
    """randint/choice via random() (3x faster than Random.randint); everything else delegates."""

    __slots__ = ("_r", "random")

    def __init__(self, r: random.Random):
        self._r = r
        self.random = r.random

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def choice(self, seq):
        return seq[int(self.random() * len(seq))]

    def __getattr__(self, name):
        return getattr(self._r, name)


def _slots(rng: random.Random, day: _dt.date) -> dict[str, Any]:
    """Every slot any template may use, drawn once per trace so the story stays consistent."""
    rng = _FastRng(rng)  # ~70 draws per trace: keep them cheap
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    email = _email(rng, first, last)
    (origin, origin_code), (dest, dest_code) = rng.sample(CITIES, 2)
    airline, al_code = rng.choice(AIRLINES)
    date = day + _dt.timedelta(days=rng.randint(2, 45))
    date2 = date + _dt.timedelta(days=rng.randint(1, 5))
    past = day - _dt.timedelta(days=rng.randint(3, 40))
    ship_eta = day + _dt.timedelta(days=rng.randint(1, 4))
    amount = round(rng.uniform(9, 480), 2)
    nights, nightly = rng.randint(1, 6), rng.choice([89, 110, 129, 145, 160, 189, 210, 249])
    tier = rng.randint(0, len(PLAN_TIERS) - 2)
    plan_price = rng.choice([9.99, 14.99, 19.99, 29.0, 49.0])
    discount_pct = rng.choice([10, 15, 20, 25, 30])
    points, balance = rng.randint(2, 60) * 50, rng.randint(1, 400) * 25
    ship_status, ship_status_text = rng.choice(SHIP_STATUSES)
    refund_type, refund_type_text = rng.choice(
        [("travel_credit", "travel credit valid for 12 months"), ("original_payment", "a refund to your original card")])
    h_old, h_new = rng.randint(6, 11), rng.randint(12, 21)
    m_new = rng.choice([0, 15, 30, 45])
    major, minor = rng.randint(3, 5), rng.randint(0, 19)
    return {
        "first": first.title(), "email": email, "email_masked": f"{email[0]}***@{email.split('@')[1]}",
        "phone": _phone(rng), "customer_id": f"C{rng.randint(1000000, 9999999)}",
        "signup_iso": (day - _dt.timedelta(days=rng.randint(60, 2000))).isoformat(),
        "order_id": f"{rng.choice('ABCDEFGHKMNPRSTW')}{rng.randint(10000, 99999)}",
        "product": rng.choice(PRODUCTS), "color": rng.choice(COLORS), "size": rng.choice(SIZES),
        "amount": f"{amount:.2f}", "amount_num": amount, "n_days": rng.randint(3, 14), "n_weeks": rng.randint(2, 6),
        "date": _human_date(date), "date_iso": date.isoformat(), "date2": _human_date(date2),
        "date2_iso": date2.isoformat(), "past_date": _human_date(past), "past_date_iso": past.isoformat(),
        "weekday": WEEKDAYS[(day - _dt.timedelta(days=rng.randint(1, 4))).weekday()],
        "origin": origin, "origin_code": origin_code, "dest": dest, "dest_code": dest_code,
        "airline": airline, "flight_no": f"{al_code}{rng.randint(100, 2999)}",
        "new_flight_no": f"{al_code}{rng.randint(100, 2999)}", "booking_ref": _code(rng, 6),
        "old_time24": f"{h_old:02d}:{rng.choice([0, 10, 25, 40, 55]):02d}",
        "new_time24": f"{h_new:02d}:{m_new:02d}", "new_time": f"{(h_new - 1) % 12 + 1}:{m_new:02d} PM",
        "fee": rng.choice([0, 50, 75, 99, 150]), "seats": rng.randint(1, 9),
        "refund_type": refund_type, "refund_type_text": refund_type_text,
        "hotel": rng.choice(HOTELS), "nights": nights, "guests": rng.randint(1, 4), "nightly": nightly,
        "hotel_total": nights * nightly, "rating": round(rng.uniform(3.6, 4.9), 1),
        "carrier": rng.choice(CARRIERS), "tracking_no": "1Z" + _code(rng, 6) + str(rng.randint(10**9, 10**10 - 1)),
        "ship_status": ship_status, "ship_status_text": ship_status_text, "ship_city": rng.choice(CITIES)[0],
        "ship_eta": _human_date(ship_eta), "ship_eta_iso": ship_eta.isoformat(),
        "subscription": rng.choice(SUBSCRIPTIONS), "plan": PLAN_TIERS[tier],
        "new_plan": PLAN_TIERS[rng.randint(tier + 1, len(PLAN_TIERS) - 1)], "plan_price": plan_price,
        "prorated": round(rng.uniform(5, 120), 2), "last4": f"{rng.randint(0, 9999):04d}",
        "lock_reason": rng.choice(LOCK_REASONS),
        "street": f"{rng.randint(2, 990)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}",
        "old_street": f"{rng.randint(2, 990)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}",
        "zip": f"{rng.randint(10000, 99950)}", "apt": f"{rng.randint(1, 24)}{rng.choice('ABCD')}",
        "device": rng.choice(DEVICES), "app_screen": rng.choice(APP_SCREENS),
        "app_version": f"{major}.{minor}.{rng.randint(0, 9)}", "latest_version": f"{major}.{minor + 1}.0",
        "error_code": rng.choice([f"E{rng.randint(100, 999)}", "ERR_NETWORK_CHANGED", "0x80070005", "NSURLError -1001"]),
        "crash_rate": round(rng.uniform(0.5, 9.0), 1), "kb": rng.randint(1000, 9999),
        "privacy_type": "export", "severity": rng.choice(SEVERITIES), "bug_no": rng.randint(10000, 99999),
        "store": rng.choice(STORES), "sku": rng.randint(100000, 999999), "qty": rng.randint(2, 12),
        "qty_avail": rng.randint(1, 30),
        "coupon": f"{rng.choice(COUPON_WORDS)}{discount_pct}", "discount_pct": discount_pct,
        "discount_amount": round(amount * discount_pct / 100, 2),
        "points": points, "balance": balance, "new_balance": balance + points,
        "member_no": f"{rng.randint(100, 999)}{rng.randint(100000, 999999)}",
        "help_title": rng.choice(HELP_TITLES), "open_tickets": rng.randint(1, 4), "n_orders": rng.randint(2, 80),
        "ordinal": rng.choice(ORDINALS), "ref6": _code(rng, 6),
        "esc_id": f"ESC-{rng.randint(100000, 999999)}", "wait": rng.randint(3, 25),
        "card": _card_number(rng), "api_key": "sk-" + _code(rng, 40, ALNUM),
    }


def _fill(obj: Any, ctx: dict[str, Any]) -> Any:
    """Fill templates recursively; a bare "{slot}" keeps the slot's raw type."""
    if isinstance(obj, str):
        if obj.startswith("{") and obj.endswith("}") and obj.count("{") == 1:
            return ctx[obj[1:-1]]
        return obj.format_map(ctx)
    if isinstance(obj, dict):
        return {k: _fill(v, ctx) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fill(v, ctx) for v in obj]
    return obj


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


# --------------------------------------------------------------------------
# Conversation builder
# --------------------------------------------------------------------------


def _iso_ms(t_ms: int) -> str:
    return (_EPOCH + _dt.timedelta(milliseconds=t_ms)).isoformat(timespec="milliseconds") + "Z"


_EPOCH = _dt.datetime(1970, 1, 1)


def _clone(msg: dict) -> dict:
    """Independent copy of a chat message (each llm span owns its own history, like parsed JSON)."""
    out = dict(msg)
    if isinstance(out.get("content"), list):
        out["content"] = [
            {"type": p["type"], "image_url": {"url": p["image_url"]["url"]}} if p["type"] == "image_url" else dict(p)
            for p in out["content"]
        ]
    if "tool_calls" in out:
        out["tool_calls"] = [
            {"id": c["id"], "type": c["type"], "function": dict(c["function"])} for c in out["tool_calls"]
        ]
    return out


class _Convo:
    """Accumulates the message history and the spans an agent loop would emit."""

    def __init__(self, rng: random.Random, t0_ms: int, model: str):
        self.rng = rng
        self.t = t0_ms
        self.model = model
        self.history: list[dict] = [{"role": "system", "content": SYSTEM_PROMPT}]
        self.spans: list[dict] = []
        self.n_calls = 0
        self.prompt_tokens = 350 + len(SYSTEM_PROMPT) // 4  # tool schemas + system prompt
        self.last_text = ""

    def _span(self, type_: str, name: str, inp: Any, out: Any, start: int, end: int,
              metadata: dict, error: str | None = None) -> dict:
        span = {"id": f"s{len(self.spans) + 1}", "parent_id": "s0", "type": type_, "name": name,
                "input": inp, "output": out, "metadata": metadata,
                "start_time": _iso_ms(start), "end_time": _iso_ms(end), "error": error}
        self.spans.append(span)
        return span

    def _add(self, msg: dict, tokens: int) -> None:
        self.history.append(msg)
        self.prompt_tokens += tokens + 4

    def user(self, content: Any, think: bool = True) -> None:
        if think:
            self.t += self.rng.randint(5_000, 70_000)
        if isinstance(content, list):
            tokens = len(content[0]["text"]) // 4 + 765  # image tiles
        else:
            tokens = len(content) // 4
        self._add({"role": "user", "content": content}, tokens)

    def llm(self, text: str, calls: Iterable[tuple[str, dict]] = ()) -> list[dict]:
        msg: dict[str, Any] = {"role": "assistant", "content": text}
        tool_calls = []
        for name, args in calls:
            self.n_calls += 1
            tool_calls.append({"id": f"call_{self.n_calls}", "type": "function",
                               "function": {"name": name, "arguments": json.dumps(args)}})
        if tool_calls:
            msg["tool_calls"] = tool_calls
        completion = max(1, len(text) // 4) + 20 * len(tool_calls)
        latency = 250 + completion * self.rng.randint(12, 30) + self.prompt_tokens // 20
        start = self.t + self.rng.randint(20, 120)
        self.t = start + latency
        self._span("llm", f"chat {self.model}", {"messages": [_clone(m) for m in self.history]}, _clone(msg),
                   start, self.t,
                   {"model": self.model, "tokens": {"prompt": self.prompt_tokens, "completion": completion},
                    "latency_ms": latency, "temperature": 0.2})
        self._add(msg, completion)
        if text:
            self.last_text = text
        return tool_calls

    def tool(self, call: dict, result: Any, error: str | None) -> None:
        name = call["function"]["name"]
        args = json.loads(call["function"]["arguments"])
        if error:
            latency = 30_000 if "Timeout" in error else self.rng.randint(80, 1500)
        else:
            latency = self.rng.randint(40, 900)
        start = self.t + self.rng.randint(2, 30)
        self.t = start + latency
        self._span("tool", name, args, None if error else result, start, self.t, {"latency_ms": latency}, error)
        content = json.dumps({"error": error} if error else result)
        self._add({"role": "tool", "tool_call_id": call["id"], "name": name, "content": content}, len(content) // 4)

    def llm_count(self) -> int:
        return sum(1 for s in self.spans if s["type"] == "llm")


def _first_message(rng: random.Random, fam: Family, sentiment: str, ctx: dict) -> tuple[str, Any]:
    """The opening request: family template + mood + optional PII/screenshot. Returns (text, message content)."""
    opener = rng.choice(fam.openers)
    if isinstance(opener, tuple):
        opener, overrides = opener
        ctx.update(overrides)
    body = opener.format_map(ctx)
    if rng.random() < 0.10:  # some users type in lowercase without the final period
        body = body.lower().rstrip(".")
    mood = rng.choice(OPENER_MOOD[sentiment]) if rng.random() < 0.4 else ""
    extras = [rng.choice(OPENER_TAIL[sentiment])]
    if "@" not in body and rng.random() < 0.12:
        extras.append(rng.choice(PII_EMAIL).format_map(ctx))
    if rng.random() < 0.06:
        extras.append(rng.choice(PII_PHONE).format_map(ctx))
    if rng.random() < (0.15 if fam.name in CARD_FAMILIES else 0.02):
        extras.append(rng.choice(PII_CARD).format_map(ctx))
    if rng.random() < (0.12 if fam.name in KEY_FAMILIES else 0.004):
        extras.append(rng.choice(PII_KEY).format_map(ctx))
    tail = "".join(extras)
    if tail and body[-1] not in ".?!":
        body += "."
    text = rng.choice(GREETINGS) + mood + body + tail
    if rng.random() < fam.image_p:
        text += rng.choice(IMAGE_NOTES)
        raw = b"\x89PNG\r\n\x1a\n" + rng.randbytes(rng.randint(1500, 3000))
        url = "data:image/png;base64," + base64.b64encode(raw).decode("ascii")
        return text, [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]
    return text, text


def _pick_outcome(rng: random.Random, fam: Family, sentiment: str) -> str:
    weights = dict(fam.outcomes or BASE_OUTCOMES)
    if not fam.errors:
        weights.pop("tool_error", None)
    for k, m in SENTIMENT_OUTCOME_BIAS[sentiment].items():
        if k in weights:
            weights[k] *= m
    return _weighted(rng, weights)


def _attempts(rng: random.Random, fam: Family, tool: Tool, outcome: str) -> list[str | None]:
    """Error (or None for success) per attempt of one tool; only flaky tools ever fail."""
    if tool.name != fam.flaky_tool:
        return [None]
    err = lambda: rng.choice(fam.errors)  # noqa: E731
    if outcome == "tool_error":
        return [err() for _ in range(rng.choice([2, 2, 3]))]
    if fam.always_fails:
        return [err(), None] if outcome == "resolved" else [err(), err()]
    return [err(), None] if rng.random() < 0.15 else [None]


def _planted(fam: Family, seed: int, i: int, day_idx: int, n_days: int) -> Family:
    """The family trace i takes instead of `fam`, if a planted one takes it (see PLANTED)."""
    if n_days < PLANTED["min_days"]:
        return fam
    u = random.Random(f"{seed}:{i}:planted").random()  # its own stream, apart from the trace's
    if day_idx < n_days - 1:
        return PLANTED_FAMILIES[OUTAGE_FAMILY] if u < PLANTED["outage"]["baseline_share"] else fam
    if u < PLANTED["outage"]["share"]:
        return _OUTAGE
    if u < PLANTED["outage"]["share"] + PLANTED["launch"]["share"]:
        return PLANTED_FAMILIES[LAUNCH_FAMILY]
    return fam


def _build_trace(i: int, seed: int, day_list: list[_dt.date], day_weights: list[float],
                 fam_weights: list[list[float]], project: str) -> dict:
    rng = random.Random(f"{seed}:{i}")
    n_days = len(day_list)
    # The first `days` traces take one day each so every day is covered; the rest follow traffic.
    day_idx = i if i < n_days else rng.choices(range(n_days), weights=day_weights)[0]
    day = day_list[day_idx]
    fam = _planted(rng.choices(FAMILIES, weights=fam_weights[day_idx])[0], seed, i, day_idx, n_days)
    sentiment = _weighted(rng, fam.sentiments or SENTIMENT_WEIGHTS)
    outcome = _pick_outcome(rng, fam, sentiment)
    ctx = _slots(rng, day)
    ctx.update(topic=fam.topic, team=fam.team, system=fam.system, action=fam.action)

    start_dt = _dt.datetime(day.year, day.month, day.day, rng.choices(range(24), weights=HOUR_WEIGHTS)[0],
                            rng.randint(0, 59), rng.randint(0, 59))
    t0 = int((start_dt - _EPOCH).total_seconds()) * 1000
    model = "gpt-4o-mini" if rng.random() < 0.85 else "gpt-4o"
    first_text, first_content = _first_message(rng, fam, sentiment, ctx)

    # ---- plan, trimmed to at most MAX_LLM_SPANS llm calls ----
    if outcome == "resolved":
        used = list(fam.tools)
    elif outcome == "tool_error":
        names = [t.name for t in fam.tools]
        used = list(fam.tools[: names.index(fam.flaky_tool) + 1])
    else:
        used = list(fam.tools[:1])
    # Some users abandon as soon as the agent asks them for details (no tools run).
    early_quit = outcome == "gave_up" and not fam.always_fails and rng.random() < 0.3
    if early_quit:
        used = []
    attempts = [_attempts(rng, fam, t, outcome) for t in used]
    clarify = early_quit or fam.always_ask or rng.random() < (0.6 if sentiment == "confused" else 0.3)
    closing = rng.random() < 0.55
    extra_q = outcome == "resolved" and rng.random() < 0.25  # "will I get an email?" before the goodbye
    # Independent lookups may go out as parallel tool calls in a single llm turn.
    parallel = (fam.parallel_ok and len(used) > 1 and rng.random() < 0.5
                and all(a == [None] for a in attempts))
    user_demand = fam.demands_human or sentiment in ("confused", "frustrated", "angry") or rng.random() < 0.4

    def n_llm() -> int:
        if outcome == "resolved":
            tail = 1 + extra_q + closing  # answer (+ follow-up answer) (+ sign-off after thanks)
        elif outcome == "tool_error":
            tail = 1 + closing  # apology (+ reply to the user's reaction)
        elif outcome == "escalated":
            tail = 3 if (user_demand and not fam.demands_human) else 2  # (blocker,) hand-off call, confirmation
        else:
            tail = 1 if early_quit else 2  # (blocker,) sign-off after the user gives up
        return clarify + (1 if parallel else sum(len(a) for a in attempts)) + tail

    while n_llm() > MAX_LLM_SPANS:
        if closing:
            closing = False
        elif extra_q:
            extra_q = False
        elif clarify and not fam.always_ask and not early_quit:
            clarify = False
        else:  # drop a retry; never reached with the current tables
            longest = max(attempts, key=len)
            assert len(longest) > 1
            longest.pop()

    c = _Convo(rng, t0, model)
    c.user(first_content, think=False)
    if clarify:
        c.llm(fam.ask)
        if early_quit:
            c.user(rng.choice(GIVE_UP_USER[sentiment]))
        else:
            detail = rng.choice(fam.details).format_map(ctx)
            c.user(rng.choice(DETAIL_REPLY[sentiment]).format(d=detail, D=detail[0].upper() + detail[1:]))

    failed = False
    if parallel:
        filled = [(t.name, _fill(t.args, ctx), _fill(t.result, ctx)) for t in used]
        calls = c.llm(rng.choice(TOOL_PREFACE), [(name, args) for name, args, _ in filled])
        for call, (_, _, result) in zip(calls, filled):
            c.tool(call, result, None)
        used, attempts = [], []
    for k, (tool, tries) in enumerate(zip(used, attempts)):
        args, result = _fill(tool.args, ctx), _fill(tool.result, ctx)
        for n, err in enumerate(tries):
            if n:
                text = rng.choice(RETRY_PREFACE).format_map(ctx)
            elif k == 0 and fam.demands_human and clarify:
                text = rng.choice(ANGRY_ACK)
            else:
                text = rng.choice(TOOL_PREFACE if k == 0 else SECOND_TOOL_PREFACE)
            (call,) = c.llm(text, [(tool.name, args)])
            c.tool(call, result, err)
        failed = tries[-1] is not None

    sorry = SORRY_PREFIX.get(sentiment, "")
    if outcome == "resolved":
        c.llm(sorry + rng.choice(fam.resolve).format_map(ctx))
        if extra_q:
            c.user(rng.choice(EXTRA_QUESTION[sentiment]))
            c.llm(rng.choice(EXTRA_ANSWER))
        if closing:
            c.user(rng.choice(CLOSING_USER[sentiment]))
            c.llm(rng.choice(CLOSING_AGENT[sentiment]))
    elif outcome == "tool_error":
        c.llm(rng.choice(TOOL_ERROR_APOLOGY).format_map(ctx))
        if closing:
            c.user(rng.choice(TOOL_ERROR_USER[sentiment]))
            c.llm(rng.choice(TOOL_ERROR_AGENT))
    elif outcome == "escalated":
        esc_args = {"reason": fam.topic, "priority": "high" if sentiment in ("frustrated", "angry") else "normal",
                    "summary": f"{fam.topic.capitalize()}: customer needs a human agent."}
        esc_result = {"ticket_id": ctx["esc_id"], "queue": fam.team, "estimated_wait_minutes": ctx["wait"]}
        if fam.demands_human:
            text = rng.choice(ESCALATE_PROACTIVE).format_map(ctx)
        elif user_demand:
            blocker = TOOL_ERROR_APOLOGY if failed else ESCALATE_POLICY
            c.llm(rng.choice(blocker).format_map(ctx))
            c.user(rng.choice(ESCALATE_DEMAND[sentiment]))
            text = "Of course, I'll connect you with a colleague."
        else:
            text = rng.choice(ESCALATE_AFTER_ERROR if failed else ESCALATE_PROACTIVE).format_map(ctx)
        (call,) = c.llm(text, [("escalate_to_human", esc_args)])
        c.tool(call, esc_result, None)
        c.llm(rng.choice(ESCALATE_DONE).format_map(ctx))
    else:  # gave_up
        if not early_quit:
            c.llm(rng.choice(TOOL_ERROR_APOLOGY if failed else BLOCKERS).format_map(ctx))
            c.user(rng.choice(GIVE_UP_USER[sentiment]))
        c.llm(rng.choice(GIVE_UP_AGENT))

    # Online evaluator: runs after the agent, scores it; not part of the conversation.
    lo, hi = SCORE_RANGES[outcome]
    s_start = c.t + rng.randint(100, 800)
    s_end = s_start + rng.randint(400, 2500)
    score = {"id": f"s{len(c.spans) + 1}", "parent_id": "s0", "type": "score", "name": "helpfulness_scorer",
             "input": {"input": first_text, "output": c.last_text}, "output": {"score": round(rng.uniform(lo, hi), 2)},
             "metadata": {"scorer_model": "gpt-4o-mini"}, "start_time": _iso_ms(s_start), "end_time": _iso_ms(s_end),
             "error": None}
    root = {"id": "s0", "parent_id": None, "type": "task", "name": "support-agent",
            "input": {"user": first_text}, "output": {"final": c.last_text},
            "metadata": {"channel": rng.choice(["web_chat", "web_chat", "mobile_app", "email"]),
                         "agent_version": "support-agent 2.3.1", "locale": "en-US"},
            "start_time": _iso_ms(t0), "end_time": _iso_ms(s_end), "error": None}
    return {
        "trace_id": f"syn-{seed}-{i:06d}",
        "project": project,
        "started_at": start_dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "labels": {"scenario": fam.name, "sentiment": sentiment, "outcome": outcome},
        "spans": [root, *c.spans, score],
    }


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def generate_traces(n_traces: int = 1200, days: int = 7, seed: int = 7, end: _dt.date | None = None,
                    project: str = "acme-support") -> list[dict]:
    """Span-format trace records (JSON-ready dicts), started_at spread over `days` days ending at `end` (default: today UTC)."""
    if n_traces < 0:
        raise ValueError("n_traces must be >= 0")
    if days < 1:
        raise ValueError("days must be >= 1")
    if end is None:
        end = _dt.datetime.now(_dt.timezone.utc).date()
    elif isinstance(end, _dt.datetime):
        end = end.date()
    day_list = [end - _dt.timedelta(days=days - 1 - k) for k in range(days)]
    day_weights = [0.6 if d.weekday() >= 5 else 1.0 for d in day_list]  # quieter weekends
    base = [f.weight for f in FAMILIES]
    incident_day = days - 2 if days >= 3 else None
    fam_weights = [
        [w * (INCIDENT_MULTIPLIER if k == incident_day and f.name == INCIDENT_FAMILY else 1.0)
         for f, w in zip(FAMILIES, base)]
        for k in range(days)
    ]
    return [_build_trace(i, seed, day_list, day_weights, fam_weights, project) for i in range(n_traces)]


def write_jsonl(records: Iterable[dict], path: str | os.PathLike) -> int:
    """Write one JSON object per line (UTF-8); returns how many records were written."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with p.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
            fh.write("\n")
            n += 1
    return n
