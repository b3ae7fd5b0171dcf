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
depend on how many traces were asked for. Only the stdlib is used.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

__all__ = [
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


ORDER_LOOKUP = Tool(
    "lookup_order",
    {"order_id": "{order_id}"},
    {"order_id": "{order_id}", "status": "delivered", "items": [{"name": "{product}", "price": "{amount_num}"}],
     "total": "{amount_num}", "placed_on": "{past_date_iso}", "customer_id": "{customer_id}"},
)
ACCOUNT_LOOKUP = Tool(
    "lookup_account",
    {"email": "{email}"},
    {"customer_id": "{customer_id}", "status": "active", "email_verified": True, "created": "{signup_iso}"},
)
BOOKING_LOOKUP = Tool(
    "lookup_booking",
    {"booking_ref": "{booking_ref}"},
    {"booking_ref": "{booking_ref}", "flight": "{flight_no}", "route": "{origin_code}-{dest_code}",
     "departure": "{date_iso}T{old_time24}", "fare": "Economy Flex", "paid": "{amount_num}"},
)
SUBSCRIPTION_LOOKUP = Tool(
    "get_subscription",
    {"customer_id": "{customer_id}"},
    {"subscription_id": "SUB-{ref6}", "plan": "{subscription}", "tier": "{plan}", "price": "{plan_price}",
     "renews_on": "{date_iso}", "status": "active"},
)
CUSTOMER_LOOKUP = Tool(
    "lookup_customer",
    {"email": "{email}"},
    {"customer_id": "{customer_id}", "tier": "gold", "open_tickets": "{open_tickets}", "lifetime_orders": "{n_orders}"},
)

FAMILIES: list[Family] = [
    Family(
        name="refund_request", topic="refund request", team="payments", system="payments system",
        action="process your refund", weight=1.4,
        openers=(
            "I'd like a refund for the {product} I ordered on {past_date}. It's not what I expected.",
            "Can I get my money back for order {order_id}? The {product} doesn't suit me.",
            "How do I request a refund for my {product}? I paid ${amount} and want to send it back.",
            "I want a refund on order {order_id}, please. I changed my mind about the {product}.",
            "I returned the {product} two weeks ago and still haven't received my ${amount} refund.",
            "Please refund order {order_id}. The {product} stopped working after {n_days} days.",
            "Is it too late to get a refund for the {product}? I bought it on {past_date}.",
            "I was promised a refund of ${amount} for order {order_id} and nothing has shown up on my card.",
        ),
        ask="I can help with that refund. Could you share your order number?",
        details=("order {order_id}", "order number {order_id}", "#{order_id}"),
        tools=(
            ORDER_LOOKUP,
            Tool("issue_refund", {"order_id": "{order_id}", "amount": "{amount_num}", "reason": "customer_request"},
                 {"refund_id": "RF-{ref6}", "status": "approved", "amount": "{amount_num}", "eta_business_days": 5}),
        ),
        resolve=(
            "Done! I've issued a refund of ${amount} for the {product} on order {order_id} (refund ID RF-{ref6}). "
            "It should appear on your statement within 5-7 business days.",
            "Your refund of ${amount} for order {order_id} has been approved. You'll get a confirmation email "
            "shortly, and the money usually arrives in 3-5 business days.",
        ),
    ),
    Family(
        name="password_reset", topic="password reset", team="accounts", system="account service",
        action="send a reset link", weight=1.3,
        openers=(
            "I forgot my password and can't log in.",
            "How do I reset my password? The reset link never arrives.",
            "The password reset email you sent says the link expired. Can you send a new one?",
            "I can't remember my password for the Acme app on my {device}.",
            "Reset my password please, I've been unable to sign in since {weekday}.",
            "My password isn't working anymore even though I'm sure it's right. Can I reset it?",
            "I need a password reset link for my account, I changed computers and lost my saved login.",
            "Every time I click 'forgot password' on the website I get an error page. Help?",
        ),
        ask="I can send you a reset link. What's the email address on your account?",
        details=("{email}", "the address {email}"),
        tools=(
            ACCOUNT_LOOKUP,
            Tool("send_password_reset", {"customer_id": "{customer_id}"}, {"sent": True, "expires_in_minutes": 30}),
        ),
        resolve=(
            "I've sent a fresh password reset link to {email_masked}. It's valid for 30 minutes; check your spam "
            "folder if you don't see it.",
            "A new reset link is on its way to {email_masked}. Once you've set a new password you'll be signed "
            "out of other devices for security.",
        ),
    ),
    Family(
        name="flight_change", topic="flight change", team="travel", system="flight booking system",
        action="look up alternative flights", weight=1.1,
        errors=("TimeoutError: GDS availability search did not respond in 30s", "HTTP 500 from booking-engine",
                "HTTP 503 from booking-engine: service unavailable"),
        flaky_tool="search_flights",
        openers=(
            "I need to change my flight from {origin} to {dest} on {date} to a later one.",
            "Can I move my {airline} flight {flight_no} to {date2}? Something came up.",
            "Is it possible to switch my {date} flight to {dest} to an earlier departure?",
            "I'd like to rebook {booking_ref}, {origin} to {dest}, for the following day.",
            "My meeting in {dest} got moved, so I need to change my flight to {date2}.",
            "How much does it cost to change the date on flight {flight_no}?",
            "Please change my return flight from {dest} back to {origin} to {date2}.",
            "Can you put me on an evening flight to {dest} instead of the morning one on {date}?",
        ),
        ask="Happy to help change your flight. What's your booking reference?",
        details=("booking reference {booking_ref}", "{booking_ref}", "confirmation code {booking_ref}"),
        tools=(
            Tool("search_flights", {"origin": "{origin_code}", "destination": "{dest_code}", "date": "{date2_iso}"},
                 {"options": [{"flight": "{new_flight_no}", "departs": "{date2_iso}T{new_time24}",
                               "change_fee": "{fee}", "seats_left": "{seats}"}]}),
            Tool("change_booking", {"booking_ref": "{booking_ref}", "new_flight": "{new_flight_no}"},
                 {"status": "confirmed", "booking_ref": "{booking_ref}", "charged": "{fee}"}),
        ),
        resolve=(
            "You're all set: booking {booking_ref} is now on {airline} {new_flight_no} from {origin} to {dest}, "
            "departing {date2} at {new_time}. The change fee was ${fee}.",
            "Done! I moved you to {new_flight_no} on {date2} at {new_time}. A new e-ticket is in your inbox; "
            "the ${fee} change fee went to the card on file.",
        ),
    ),
    Family(
        name="flight_cancellation", topic="flight cancellation", team="travel", system="booking system",
        action="cancel your booking",
        openers=(
            "I need to cancel my flight to {dest} on {date}.",
            "Please cancel booking {booking_ref}, I can't travel anymore.",
            "Can I cancel flight {flight_no} and get a refund or credit?",
            "My trip to {dest} is off. How do I cancel and what do I get back?",
            "I want to cancel my {origin} to {dest} flight, I'm sick and can't fly on {date}.",
            "Cancel my flight reservation for {date} please. What's the cancellation fee?",
            "The airline moved my {dest} flight by six hours, so I want to cancel {booking_ref}.",
            "If I cancel my flight to {dest} now, do I get travel credit?",
        ),
        ask="I'm sorry your plans changed. What's the booking reference for the flight?",
        details=("booking reference {booking_ref}", "{booking_ref}", "it's under {booking_ref}"),
        tools=(
            BOOKING_LOOKUP,
            Tool("cancel_booking", {"booking_ref": "{booking_ref}"},
                 {"status": "cancelled", "refund_type": "{refund_type}", "amount": "{amount_num}"}),
        ),
        resolve=(
            "Booking {booking_ref} to {dest} is cancelled. ${amount} has been issued as {refund_type_text}.",
            "Your flight on {date} ({flight_no}) is cancelled and you'll receive ${amount} as {refund_type_text}. "
            "A confirmation email is on its way.",
        ),
    ),
    Family(
        name="hotel_booking", topic="hotel booking", team="travel", system="hotel reservation system",
        action="make the reservation",
        openers=(
            "I'd like to book a hotel in {dest} from {date} for {nights} nights.",
            "Can you find me a room near downtown {dest} for {guests} people on {date}?",
            "Looking for a hotel in {dest} under ${nightly} a night, checking in {date}.",
            "Book me a double room at the {hotel} in {dest} for {nights} nights please.",
            "I need a pet-friendly hotel in {dest} for the weekend of {date}.",
            "Do you have any hotels with free breakfast in {dest} around {date}?",
            "I want to reserve {nights} nights at a hotel close to the {dest} airport.",
            "Can you add a hotel in {dest} to my trip? Arriving {date}, {guests} guests.",
        ),
        ask="Sure! How many guests, and do you have a budget per night in mind?",
        details=("{guests} guests, around ${nightly} a night", "{guests} of us, max ${nightly} per night"),
        tools=(
            Tool("search_hotels", {"city": "{dest}", "check_in": "{date_iso}", "nights": "{nights}", "guests": "{guests}"},
                 {"results": [{"name": "{hotel}", "nightly_rate": "{nightly}", "rating": "{rating}"}]}),
            Tool("create_reservation", {"hotel": "{hotel}", "check_in": "{date_iso}", "nights": "{nights}",
                                        "guests": "{guests}"},
                 {"confirmation": "H{ref6}", "total": "{hotel_total}", "free_cancellation_until": "{date_iso}"}),
        ),
        resolve=(
            "Booked! {nights} nights at the {hotel} in {dest} from {date}, confirmation H{ref6}. "
            "Total ${hotel_total}, with free cancellation until the day before check-in.",
            "Your room at the {hotel} is confirmed (H{ref6}) for {guests} guests, checking in {date}. "
            "The total is ${hotel_total}.",
        ),
    ),
    Family(
        name="order_tracking", topic="order tracking", team="orders", system="shipment tracking service",
        action="get the latest tracking update", weight=1.6,
        errors=("TimeoutError: carrier tracking API did not respond in 20s",
                "HTTP 429 Too Many Requests from carrier-gateway", "HTTP 502 Bad Gateway from carrier-gateway"),
        flaky_tool="track_shipment",
        openers=(
            "Where is my package? Order {order_id} was supposed to arrive {weekday}.",
            "My {product} still hasn't arrived. Can you check order {order_id}?",
            "Tracking for order {order_id} hasn't updated in {n_days} days. Is it lost?",
            "When will my {product} be delivered?",
            "It says delivered but I never got my package. Order {order_id}.",
            "Can you give me an update on the {product} I ordered on {past_date}?",
            "Has order {order_id} shipped yet? I need it before {date}.",
            "The courier tracking link for my {product} doesn't work. Where is it?",
        ),
        ask="Let me check on that. What's your order number?",
        details=("order {order_id}", "{order_id}", "order #{order_id}"),
        tools=(
            Tool("lookup_order", {"order_id": "{order_id}"},
                 {"order_id": "{order_id}", "status": "shipped", "carrier": "{carrier}",
                  "tracking_number": "{tracking_no}", "items": [{"name": "{product}"}]}),
            Tool("track_shipment", {"tracking_number": "{tracking_no}", "carrier": "{carrier}"},
                 {"status": "{ship_status}", "last_scan": "{ship_city}", "estimated_delivery": "{ship_eta_iso}"}),
        ),
        resolve=(
            "Your {product} (order {order_id}) is {ship_status_text} with {carrier}; it was last scanned in "
            "{ship_city} and should arrive by {ship_eta}. Tracking number: {tracking_no}.",
            "Good news: order {order_id} is {ship_status_text}. {carrier} expects to deliver it by {ship_eta}.",
        ),
    ),
    Family(
        name="damaged_item_return", topic="damaged item return", team="returns", system="returns system",
        action="create the return", image_p=0.18,
        openers=(
            "My {product} arrived broken. I want to return it.",
            "The box was crushed and the {product} inside is cracked. Order {order_id}.",
            "I received a damaged {product}. How do I send it back?",
            "The {product} I got has a big scratch on it, can I get a replacement?",
            "The item arrived with missing parts and a dent. Order {order_id}. What now?",
            "I need a return label for a defective {product}, it won't turn on out of the box.",
            "Half of the {product} was shattered when I opened the package.",
            "Can I exchange my damaged {product} for a new one? Order {order_id}.",
        ),
        ask="I'm sorry it arrived like that! What's the order number so I can set up the return?",
        details=("order {order_id}", "{order_id}"),
        tools=(
            ORDER_LOOKUP,
            Tool("create_return_label", {"order_id": "{order_id}", "reason": "damaged_in_transit", "replacement": True},
                 {"rma": "RMA-{ref6}", "label_url": "https://returns.acme.example/label/{ref6}", "replacement": True}),
        ),
        resolve=(
            "I'm sorry your {product} arrived damaged. I've created return RMA-{ref6}; the prepaid label is in your "
            "email, and a replacement ships as soon as the carrier scans the return.",
            "Return RMA-{ref6} is set up for order {order_id}. Print the label from your email, and we'll send a new "
            "{product} right away, no need to wait for the old one to arrive.",
        ),
    ),
    Family(
        name="subscription_cancellation", topic="subscription cancellation", team="billing",
        system="subscription service", action="cancel the subscription",
        openers=(
            "How do I cancel my {subscription} subscription?",
            "Please cancel my {subscription} membership before it renews on {date}.",
            "I want to stop my subscription, I'm not using it anymore.",
            "Cancel {subscription} now. I don't want to be charged ${plan_price} again.",
            "I signed up for a free trial of {subscription} and want to cancel before it charges me.",
            "Can I pause my {subscription} subscription instead of cancelling?",
            "Turn off auto-renew on my {subscription} plan please.",
            "I'm moving abroad and need to end my {subscription} subscription.",
        ),
        ask="I can take care of that. Which email address is the subscription under?",
        details=("{email}", "my email, {email}"),
        tools=(
            SUBSCRIPTION_LOOKUP,
            Tool("cancel_subscription", {"subscription_id": "SUB-{ref6}", "at_period_end": True},
                 {"status": "cancelled", "access_until": "{date_iso}"}),
        ),
        resolve=(
            "Your {subscription} subscription is cancelled. You won't be charged again, and you keep access "
            "until {date}.",
            "Auto-renew is off and {subscription} is cancelled as of the end of this period ({date}). "
            "You'll get a confirmation email.",
        ),
    ),
    Family(
        name="billing_dispute", topic="billing dispute", team="billing", system="billing system",
        action="look at the charges on your account", image_p=0.12,
        errors=("HTTP 500 from billing-api", "HTTP 502 Bad Gateway from billing-api",
                "TimeoutError: billing-api did not respond in 30s"),
        flaky_tool="list_charges",
        openers=(
            "I was charged twice for order {order_id}, ${amount} each time.",
            "There's a double charge of ${amount} on my card from {past_date}. Please fix it.",
            "Why did you bill me ${amount}? I never authorized that charge.",
            "My statement shows two identical payments to Acme. I only bought one {product}.",
            "I was billed ${amount} after I cancelled my {subscription} subscription.",
            "You charged my card ending in {last4} ${amount} for something I didn't order.",
            "I see a pending charge and a completed charge for the same order {order_id}. Which one is real?",
            "I want to dispute a charge of ${amount} from {past_date}.",
        ),
        ask="I'm sorry about that. Could you tell me the order number the charge relates to?",
        details=("order {order_id}", "{order_id}", "it's order {order_id}"),
        tools=(
            Tool("list_charges", {"customer_id": "{customer_id}", "since": "{past_date_iso}"},
                 {"charges": [{"id": "ch_{ref6}A", "amount": "{amount_num}", "order_id": "{order_id}"},
                              {"id": "ch_{ref6}B", "amount": "{amount_num}", "order_id": "{order_id}"}]}),
            Tool("reverse_charge", {"charge_id": "ch_{ref6}B", "reason": "duplicate"},
                 {"status": "reversed", "amount": "{amount_num}"}),
        ),
        resolve=(
            "You're right, there was a duplicate ${amount} charge on order {order_id}. I've reversed it and it will "
            "drop off your statement in 3-5 business days.",
            "I found the duplicate charge of ${amount} and reversed it. You'll see the credit on your card within a "
            "few business days.",
        ),
    ),
    Family(
        name="account_locked_2fa", topic="account lockout / 2FA", team="accounts", system="identity service",
        action="unlock your account",
        openers=(
            "My account is locked after too many login attempts.",
            "I'm not getting the 2FA code by text anymore since I changed my phone number.",
            "I lost my phone and can't get my two-factor code. How do I log in?",
            "It says my account has been suspended for suspicious activity. I didn't do anything!",
            "The authenticator app codes are always rejected as invalid.",
            "I'm locked out of my account because the verification code never arrives.",
            "I got a new {device} and my 2FA didn't transfer. Help me get back in.",
            "Why is my account locked? I just tried to log in from {dest}.",
        ),
        ask="Let's get you back in. What's the email address on the account?",
        details=("{email}", "the account is {email}"),
        tools=(
            Tool("lookup_account", {"email": "{email}"},
                 {"customer_id": "{customer_id}", "status": "locked", "reason": "{lock_reason}", "mfa": "sms"}),
            Tool("unlock_account", {"customer_id": "{customer_id}", "reset_mfa": True},
                 {"status": "active", "mfa_reset": True}),
        ),
        resolve=(
            "I've unlocked your account and reset two-factor authentication. The next time you sign in you'll be "
            "asked to set up 2FA again.",
            "Your account is active again. I also cleared the old 2FA device, so you can enroll your {device} "
            "when you next log in.",
        ),
    ),
    Family(
        name="address_change", topic="address change", team="orders", system="order management system",
        action="update the address",
        openers=(
            "I need to change the shipping address on order {order_id}.",
            "I moved! Please update my address to {street}, {dest}.",
            "Can I send order {order_id} to my work address instead?",
            "I typed the wrong zip code on my order, it should be {zip}.",
            "Please update the delivery address for my {product} before it ships.",
            "How do I change the default address in my account?",
            "Can you redirect my package to {street}, {dest} {zip}? I'm not home this week.",
            "Wrong apartment number on order {order_id}, it should be Apt {apt}.",
        ),
        ask="Sure. What's the order number, and the new address?",
        details=("order {order_id}, new address {street}, {dest} {zip}", "{order_id} to {street}, Apt {apt}, {dest}"),
        tools=(
            Tool("lookup_order", {"order_id": "{order_id}"},
                 {"order_id": "{order_id}", "status": "processing", "ship_to": "{old_street}, {dest} {zip}"}),
            Tool("update_address", {"order_id": "{order_id}", "address": "{street}, {dest} {zip}"},
                 {"updated": True, "order_id": "{order_id}"}),
        ),
        resolve=(
            "Done: order {order_id} will now ship to {street}, {dest} {zip}. You'll get an updated confirmation email.",
            "I've updated the delivery address to {street}, {dest} {zip}. It hadn't shipped yet, so no extra "
            "charge applies.",
        ),
    ),
    Family(
        name="plan_upgrade", topic="plan upgrade", team="sales", system="subscription service",
        action="change your plan",
        openers=(
            "I want to upgrade from {plan} to {new_plan}.",
            "What's the difference between {plan} and {new_plan}? Thinking of upgrading.",
            "How much would it cost to move my team to the {new_plan} plan?",
            "Upgrade me to {new_plan} please, I keep hitting the storage limit.",
            "Can I switch to annual billing on {new_plan} and get the discount?",
            "I need {seats} more seats. Can I upgrade my plan to {new_plan} today?",
            "Is there a prorated price if I upgrade to {new_plan} mid-month?",
            "Our {plan} plan isn't enough anymore, let's go to {new_plan}.",
        ),
        ask="Great! Which account should I upgrade? The email address is enough.",
        details=("{email}", "our admin account, {email}"),
        tools=(
            SUBSCRIPTION_LOOKUP,
            Tool("change_plan", {"customer_id": "{customer_id}", "new_plan": "{new_plan}", "prorate": True},
                 {"plan": "{new_plan}", "prorated_charge": "{prorated}", "effective": "immediately"}),
        ),
        resolve=(
            "You're now on {new_plan}! The prorated charge for the rest of this cycle is ${prorated}, and the new "
            "features are available right away.",
            "Upgrade complete: {plan} -> {new_plan}. You were charged ${prorated} for the remainder of the month.",
        ),
    ),
    Family(
        name="app_troubleshooting", topic="app crash troubleshooting", team="technical support",
        system="diagnostics service", action="pull the diagnostics", image_p=0.15,
        parallel_ok=True,
        openers=(
            "The app keeps crashing on my {device} whenever I open {app_screen}.",
            "Since the last update (v{app_version}) the app freezes on startup.",
            "The app closes by itself when I try to pay. I'm on a {device}.",
            "I get a white screen after logging in on my {device}.",
            "The app crashes every time I upload a photo. Already reinstalled it twice.",
            "Your app drains my battery and then crashes. {device}, version {app_version}.",
            "Error {error_code} pops up and then the app quits. What does that mean?",
            "Notifications stopped working and the app crashes when I open settings on my {device}.",
        ),
        ask="Sorry about that! Which device and app version are you using?",
        details=("{device}, app version {app_version}", "a {device} with version {app_version}"),
        tools=(
            Tool("get_app_diagnostics", {"platform": "{device}", "app_version": "{app_version}"},
                 {"latest_version": "{latest_version}", "known_issue": True, "crash_rate_pct": "{crash_rate}"}),
            Tool("search_help_center", {"query": "app crash {device}"},
                 {"articles": [{"title": "Fixing crashes after an update", "url": "https://help.acme.example/kb/{kb}"}]}),
        ),
        resolve=(
            "This is a known issue in v{app_version} on {device}. Updating to v{latest_version} fixes it; if it still "
            "crashes, clear the app cache under Settings > Storage and restart.",
            "Thanks for the details. Version {latest_version} includes a fix for this crash. Please update from the "
            "app store; here's a guide in case it persists: https://help.acme.example/kb/{kb}",
        ),
    ),
    Family(
        name="data_privacy_request", topic="data export / deletion request", team="privacy",
        system="privacy request system", action="file the request", weight=0.6,
        openers=(
            ("Under GDPR I'd like a copy of all the data you have about me.", {"privacy_type": "export"}),
            ("Please delete my account and all my personal data.", {"privacy_type": "erasure"}),
            ("How do I export my order history and personal data?", {"privacy_type": "export"}),
            ("I want to exercise my right to be forgotten. Remove everything you hold on me.", {"privacy_type": "erasure"}),
            ("Send me a data export of everything tied to my account.", {"privacy_type": "export"}),
            ("What personal information do you store about me, and how can I delete it?", {"privacy_type": "erasure"}),
            ("I request erasure of my data under GDPR Article 17.", {"privacy_type": "erasure"}),
            ("Can I download my data before I close my account?", {"privacy_type": "export"}),
        ),
        ask="I can file that for you. Which email address is the account registered to?",
        details=("{email}", "the account email is {email}"),
        tools=(
            ACCOUNT_LOOKUP,
            Tool("submit_privacy_request", {"customer_id": "{customer_id}", "type": "{privacy_type}"},
                 {"request_id": "DSR-{ref6}", "type": "{privacy_type}", "due_by": "{date_iso}"}),
        ),
        resolve=(
            "I've filed your {privacy_type} request (DSR-{ref6}). We'll email {email_masked} to verify it's you, and "
            "it will be completed by {date} at the latest.",
            "Your data {privacy_type} request DSR-{ref6} is in. Expect a verification email at {email_masked}; "
            "the legal deadline is {date}.",
        ),
    ),
    Family(
        name="bug_report", topic="bug report", team="engineering", system="issue tracker",
        action="log the bug", weight=0.7, image_p=0.15,
        openers=(
            "I found a bug: the 'Apply' button on {app_screen} does nothing.",
            "Bug report: prices show as $NaN in the cart on my {device}.",
            "When I sort my orders by date the list comes back in random order. Pretty sure that's a bug.",
            "Your API returns a 500 when I call /v2/orders with a date filter.",
            "Dark mode makes the text invisible on {app_screen}.",
            "The search results page shows items from a different country than mine.",
            "The dates on my invoice PDF are off by one day.",
            "On {app_screen} the promo field overlaps the order total, looks broken on {device}.",
        ),
        ask="Thanks for flagging this! Could you tell me the device or browser and the steps to reproduce it?",
        details=("{device}, it happens every time on {app_screen}", "{device} running app {app_version}"),
        tools=(
            Tool("search_known_issues", {"query": "{app_screen} {device}"}, {"matches": []}),
            Tool("create_bug_ticket", {"title": "User report: {app_screen} on {device}", "severity": "{severity}",
                                       "app_version": "{app_version}"},
                 {"ticket": "BUG-{bug_no}", "status": "triage"}),
        ),
        resolve=(
            "Thanks for the detailed report! I've logged it as BUG-{bug_no} for our engineering team and added your "
            "contact so you'll hear back when it's fixed.",
            "I couldn't find an existing report, so I opened BUG-{bug_no} ({severity} severity). Engineering triages "
            "new bugs daily.",
        ),
    ),
    Family(
        name="inventory_check_tool_failure", topic="stock availability", team="store operations",
        system="inventory system", action="check stock", always_fails=True,
        errors=("TimeoutError: inventory service did not respond in 30s",
                "HTTP 500 from inventory-api", "HTTP 503 from inventory-api: upstream connect error",
                "ConnectionResetError: inventory-db connection reset by peer"),
        flaky_tool="check_inventory",
        outcomes={"resolved": 0.35, "tool_error": 0.45, "escalated": 0.14, "gave_up": 0.06},
        openers=(
            "Is the {product} in stock at your {store} store?",
            "Can you check if you have the {product} in {color}?",
            "When will the {product} be back in stock?",
            "Do you have at least {qty} units of the {product} available for pickup in {store}?",
            "Is the {product} available for same-day delivery near {store}?",
            "I want to reserve a {product} for pickup today at the {store} location.",
            "Check availability of the {product}, size {size} please.",
            "Does the {store} store have the {product} or do I have to wait for shipping?",
        ),
        ask="Sure! Which store should I check, or is this for delivery?",
        details=("the {store} store", "pickup at {store}", "{store}"),
        tools=(
            Tool("check_inventory", {"sku": "SKU-{sku}", "location": "{store}"},
                 {"sku": "SKU-{sku}", "available": "{qty_avail}", "location": "{store}"}),
            Tool("reserve_for_pickup", {"sku": "SKU-{sku}", "location": "{store}", "quantity": 1},
                 {"reservation": "PU-{ref6}", "ready_in_hours": 2}),
        ),
        resolve=(
            "Good news: the {product} is in stock at {store} ({qty_avail} available). I've reserved one for pickup "
            "under PU-{ref6}; it'll be ready in about 2 hours.",
            "Thanks for waiting! {store} has {qty_avail} of the {product} right now, and reservation PU-{ref6} "
            "holds one for you until closing.",
        ),
    ),
    Family(
        name="angry_escalation", topic="complaint escalation", team="customer care", system="support system",
        action="pull up your case", weight=0.6, demands_human=True, always_ask=True,
        sentiments={"angry": 0.8, "frustrated": 0.2},
        outcomes={"escalated": 0.8, "gave_up": 0.12, "resolved": 0.08},
        openers=(
            "I want to talk to a HUMAN. Not a bot.",
            "Get me a manager. I've been waiting {n_days} days for a response about my {product}.",
            "This is the {ordinal} time I'm contacting you about order {order_id}. Escalate this now.",
            "Your company is a joke. I want a supervisor immediately.",
            "Transfer me to a real person RIGHT NOW. My {product} still hasn't arrived after {n_weeks} weeks.",
            "I'm done with this chatbot. Give me someone who can actually make decisions.",
            "Connect me to your complaints department. Order {order_id} has been a disaster from start to finish.",
            "I demand to speak to a manager about the ${amount} you owe me.",
        ),
        ask="I'm really sorry about this experience. I'll get this to the right person. Can you tell me briefly what "
            "happened so they have the details?",
        details=("my {product} from order {order_id} never arrived and nobody answers my emails",
                 "you charged me ${amount} twice and promised a refund {n_weeks} weeks ago",
                 "my flight to {dest} was cancelled and I got no compensation",
                 "I've been locked out of my account for a week"),
        tools=(CUSTOMER_LOOKUP,),
        resolve=(
            "I've reviewed your account, applied a ${amount} goodwill credit, and flagged the original issue as "
            "urgent. I'm sorry again for how this was handled.",
        ),
    ),
    Family(
        name="confused_user", topic="unclear request", team="general support", system="help center",
        action="look that up", weight=0.8, always_ask=True,
        sentiments={"confused": 0.85, "neutral": 0.15},
        outcomes={"resolved": 0.5, "gave_up": 0.3, "escalated": 0.2},
        parallel_ok=True,
        openers=(
            "hi i need help",
            "Hello? Is this where I ask about my account or my order? Not sure.",
            "I got an email from you about {subscription} and I don't understand what it means.",
            "I pressed something and now everything looks different. How do I fix it?",
            "my grandson set this up for me and now it wants a code?",
            "Not sure what I need. There's a ${amount} thing on my account?",
            "how does this work",
            "I think I ordered something on {past_date} but I can't find it anywhere??",
            "What is {subscription} and why do I have it?",
        ),
        ask="Of course, I'm happy to help! Could you tell me a little more? For example, is it about an order, a "
            "booking, a charge, or your account?",
        details=("something about my {subscription} subscription", "a charge of ${amount} I don't recognise",
                 "an order from {past_date} I can't find", "the app asking me for a code"),
        tools=(
            Tool("search_help_center", {"query": "{help_title}"},
                 {"articles": [{"title": "{help_title}", "url": "https://help.acme.example/kb/{kb}"}]}),
            CUSTOMER_LOOKUP,
        ),
        resolve=(
            "Thanks, that helps! It looks like you have the {subscription} membership, which renews on {date}. You don't "
            "need to do anything unless you'd like to cancel; I've emailed you a short step-by-step guide.",
            "Got it. I found your account and everything looks normal; the message you saw is a routine reminder. "
            "This article explains it in plain words: https://help.acme.example/kb/{kb}",
        ),
    ),
    Family(
        name="coupon_not_applied", topic="coupon not applied", team="billing", system="promotions service",
        action="check the coupon", image_p=0.12,
        openers=(
            "My coupon {coupon} isn't working at checkout.",
            "The {discount_pct}% discount wasn't applied to order {order_id}.",
            "I entered promo code {coupon} but the total didn't change.",
            "It says my code {coupon} is invalid, but the email says it's valid until {date}.",
            "I was supposed to get {discount_pct}% off the {product} but got charged full price.",
            "Can you apply the {coupon} discount retroactively to order {order_id}?",
            "The free shipping code didn't work on my ${amount} order.",
            "Why can't I combine {coupon} with the sale price on the {product}?",
        ),
        ask="Let me look into it. What's the order number and the code you used?",
        details=("order {order_id}, code {coupon}", "{order_id} with {coupon}"),
        tools=(
            Tool("validate_coupon", {"code": "{coupon}", "order_id": "{order_id}"},
                 {"valid": True, "discount_pct": "{discount_pct}", "expires": "{date_iso}", "stackable": False}),
            Tool("apply_credit", {"order_id": "{order_id}", "amount": "{discount_amount}", "reason": "coupon_not_applied"},
                 {"credited": "{discount_amount}", "status": "ok"}),
        ),
        resolve=(
            "Sorry about that, the code {coupon} should have applied. I've credited ${discount_amount} "
            "({discount_pct}% of ${amount}) back to your original payment method for order {order_id}.",
            "The coupon was valid, so I've refunded the ${discount_amount} difference on order {order_id}. It'll "
            "show up in a few days.",
        ),
    ),
    Family(
        name="loyalty_points_missing", topic="missing loyalty points", team="loyalty", system="loyalty program service",
        action="check your points",
        openers=(
            "My loyalty points from order {order_id} never showed up.",
            "I should have earned {points} points on my last purchase but my balance didn't change.",
            "Where are my rewards points for my stay at the {hotel}?",
            "My points balance dropped by {points} for no reason.",
            "I flew to {dest} last month and got no miles credited.",
            "Points from my {past_date} purchase are still pending, it's been a month.",
            "Can you add the {points} bonus points from the promotion I signed up for?",
            "My Gold status disappeared and my points are gone!",
        ),
        ask="I'll check your points. What's your member number or the email on your rewards account?",
        details=("member number {member_no}", "{email}", "my member ID is {member_no}"),
        tools=(
            Tool("get_loyalty_account", {"member_id": "{member_no}"},
                 {"member_id": "{member_no}", "balance": "{balance}", "tier": "Gold", "pending": "{points}"}),
            Tool("credit_points", {"member_id": "{member_no}", "points": "{points}", "reason": "missing_accrual"},
                 {"new_balance": "{new_balance}"}),
        ),
        resolve=(
            "I've added {points} points to your account; your new balance is {new_balance}. Sorry they didn't post "
            "automatically.",
            "Found them: {points} points were stuck as pending. They're credited now, bringing you to {new_balance}.",
        ),
    ),
]

SCENARIOS: list[str] = [f.name for f in FAMILIES]
TOOL_ERROR_FAMILIES: list[str] = [f.name for f in FAMILIES if f.errors]

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


def _build_trace(i: int, seed: int, day_list: list[_dt.date], day_weights: list[float],
                 fam_weights: list[list[float]], project: str) -> dict:
    rng = random.Random(f"{seed}:{i}")
    n_days = len(day_list)
    # The first `days` traces take one day each so every day is covered; the rest follow traffic.
    day_idx = i if i < n_days else rng.choices(range(n_days), weights=day_weights)[0]
    day = day_list[day_idx]
    fam = rng.choices(FAMILIES, weights=fam_weights[day_idx])[0]
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
