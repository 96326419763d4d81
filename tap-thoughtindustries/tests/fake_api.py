"""A fake Thought Industries "incoming" REST API for tests, the demo and the benchmark.

It serves deterministic, realistic data (users with names and e-mail addresses, content, meetings,
clients, coupons, assessment attempts, and tens of thousands of events over several weeks) and
implements the API semantics the tap relies on, as described in the vendor notes:

* ``Authorization: Bearer <key>`` is checked; a wrong key gets ``401`` with an empty body.
* ``GET /incoming/v2/events/<name>`` filters on ``startDate``/``endDate`` (both inclusive, as the
  vendor documents "at or after" / "at or before"), in epoch milliseconds or ISO 8601 (the accepted
  formats are configurable), returns events newest first, 100 per page, and paginates either with
  ``pageInfo.cursor``/``hasMore`` or not at all (the client walks ``endDate`` back). Three response
  envelopes are served: ``data.APIEvents.{pageInfo, events}`` (vendor docs), top-level ``events``
  (GitLab's production reader) and top-level ``events`` plus ``pageInfo``.
* ``GET /incoming/v2/<resource>?cursor=...`` returns ``{<resultsKey>: [...], "pageInfo": {...}}``.
* Throttling can be injected: every Nth request answers ``429`` with ``Retry-After``; tests can
  also script one-off failures and delays.

Run as a script::

    python tests/fake_api.py --port 0 --users 3000 --events 100000 --days 90 --seed 1

The first line on stdout is the base URL (the tenant root: the tap adds ``/incoming/v2``); the server
then serves until killed. Tests import :class:`FakeThoughtIndustries` and use it as a context manager.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import contextlib
import json
import random
import sys
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from harborline_singer_shared.testing.http import hold_answer

PAGE_SIZE = 100
DEFAULT_API_KEY = "fake-ti-api-key"
DEFAULT_END = datetime(2024, 7, 1, tzinfo=UTC)

# Envelopes an event endpoint can answer with.
APIEVENTS = "apievents"  # {"data": {"APIEvents": {"pageInfo": {...}, "events": [...]}}}
EVENTS = "events"  # {"events": [...]}  (no pageInfo: the client walks endDate back)
EVENTS_PAGEINFO = "events+pageinfo"  # {"events": [...], "pageInfo": {...}}

#: endpoint name -> (share of all events, default envelope)
EVENT_ENDPOINTS: dict[str, tuple[float, str]] = {
    "courseView": (0.30, EVENTS),
    "visit": (0.19, EVENTS),
    "login": (0.15, EVENTS),
    "courseAction": (0.10, APIEVENTS),
    "courseCompletion": (0.06, APIEVENTS),
    "courseEnrollment": (0.06, APIEVENTS),
    "courseCertificate": (0.04, APIEVENTS),
    "learningPathAction": (0.03, EVENTS),
    "coursePurchase": (0.03, EVENTS_PAGEINFO),
    "emailCapture": (0.02, EVENTS),
    "redemptionCodeRedeem": (0.02, EVENTS),
}

#: resource path -> key of the results list in the response
CURSOR_ENDPOINTS: dict[str, str] = {
    "users": "users",
    "content": "contentItems",
    "meetings": "meetings",
    "clients": "clients",
    "assessmentAttempts": "assessmentAttempts",
    "coupons": "coupons",
}

FIRST_NAMES = [
    "Ada",
    "Alan",
    "Amara",
    "Ananya",
    "Andrés",
    "Aoife",
    "Bea",
    "Bjorn",
    "Carlos",
    "Chen",
    "Chidi",
    "Dana",
    "Dmitri",
    "Elif",
    "Emma",
    "Farah",
    "Fatima",
    "Freya",
    "Giulia",
    "Hana",
    "Hiro",
    "Ines",
    "Isaac",
    "Jamal",
    "Jana",
    "Jonas",
    "Kai",
    "Kenji",
    "Lars",
    "Layla",
    "Leila",
    "Lucas",
    "Maya",
    "Mateo",
    "Mei",
    "Nadia",
    "Nikhil",
    "Noor",
    "Olga",
    "Omar",
    "Priya",
    "Rafael",
    "Rosa",
    "Sanjay",
    "Sofia",
    "Tariq",
    "Uma",
    "Yara",
    "Zoe",
]
LAST_NAMES = [
    "Abebe",
    "Andersen",
    "Baker",
    "Banerjee",
    "Costa",
    "Da",
    "Silva",
    "Dubois",
    "Eriksson",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Kim",
    "Larsen",
    "Lopez",
    "Mensah",
    "Moreau",
    "Müller",
    "Nakamura",
    "Novak",
    "Okafor",
    "Olsen",
    "Patel",
    "Petrov",
    "Quinn",
    "Rossi",
    "Sato",
    "Schmidt",
    "Singh",
    "Suzuki",
    "Tanaka",
    "Torres",
    "Van",
    "Dijk",
    "Walsh",
    "Weber",
    "Yilmaz",
    "Zhang",
]
COUNTRIES = ("US", "DE", "FR", "GB", "IN", "JP", "BR", "NL", "CA", "AU", "NG", "SE")
TOPICS = (
    "Getting started",
    "Merge requests",
    "CI/CD pipelines",
    "Security scanning",
    "Runners",
    "Issue boards",
    "Package registry",
    "Kubernetes agent",
    "Value stream analytics",
    "Compliance frameworks",
)
BROWSERS = ("Chrome", "Firefox", "Safari", "Edge")


def iso_ms(ms: int) -> str:
    """Format epoch milliseconds the way the vendor does: ``2023-02-10T16:44:45.084Z``."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _epoch_ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def parse_date_param(value: str, accepted: str) -> int:
    """Parse a ``startDate``/``endDate`` value to epoch ms, or raise ValueError.

    ``accepted`` is ``epoch_ms``, ``iso8601`` or ``any``.
    """
    text = value.strip()
    if text.lstrip("-").isdigit():
        if accepted == "iso8601":
            raise ValueError(f"expected an ISO 8601 timestamp, got {text!r}")
        return int(text)
    if accepted == "epoch_ms":
        raise ValueError(f"expected epoch milliseconds, got {text!r}")
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return _epoch_ms(dt)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class Dataset:
    """All generated data: cursor resources as lists, events per endpoint sorted by time."""

    users: list[dict[str, Any]]
    resources: dict[str, list[dict[str, Any]]]
    #: endpoint -> ascending epoch-ms timestamps (parallel to ``event_json``)
    event_ms: dict[str, list[int]]
    #: endpoint -> pre-encoded JSON of each event, ascending by time
    event_json: dict[str, list[bytes]]
    start: datetime
    end: datetime

    @property
    def event_count(self) -> int:
        """Number of events over all endpoints."""
        return sum(len(v) for v in self.event_ms.values())

    def events(self, endpoint: str) -> list[dict[str, Any]]:
        """Decoded events of one endpoint, oldest first (for test assertions)."""
        return [json.loads(raw) for raw in self.event_json[endpoint]]


def generate_dataset(
    *,
    users: int = 3000,
    events: int = 100_000,
    days: float = 90,
    seed: int = 1,
    end: datetime = DEFAULT_END,
) -> Dataset:
    """Generate deterministic data: the same arguments always give byte-identical responses."""
    rng = random.Random(seed)
    company_id = _uuid(rng)
    host = "university.example.com"
    subdomain = "university"
    end_ms = _epoch_ms(end)
    start = end - timedelta(days=days)
    start_ms = _epoch_ms(start)

    clients = []
    for n in range(20):
        created = start_ms - rng.randint(30, 900) * 86_400_000
        clients.append(
            {
                "id": _uuid(rng),
                "name": f"Client {n + 1:02d} Learning",
                "sku": f"CL-{n + 1:03d}",
                "slug": f"client-{n + 1:02d}",
                "disabled": rng.random() < 0.1,
                "tags": rng.sample(["partner", "enterprise", "smb", "internal", "edu"], 2),
                "createdAt": iso_ms(created),
                "updatedAt": iso_ms(created + rng.randint(0, 200) * 86_400_000),
            }
        )

    user_rows = []
    for n in range(users):
        first = rng.choice(FIRST_NAMES)
        last = rng.choice(LAST_NAMES)
        local = f"{first}.{last}".lower().replace(" ", "").replace("ü", "ue").replace("é", "e")
        created = start_ms - rng.randint(0, 700) * 86_400_000 - rng.randint(0, 86_399_999)
        client = rng.choice(clients)
        user_rows.append(
            {
                "id": _uuid(rng),
                "email": f"{local}{n}@{rng.choice(['example.com', 'example.org', 'example.net'])}",
                "firstName": first,
                "lastName": last,
                "shippingName": f"{first} {last}" if rng.random() < 0.2 else None,
                "clientId": client["id"],
                "country": rng.choice(COUNTRIES),
                "state": None,
                "zipCode": f"{rng.randint(10000, 99999)}" if rng.random() < 0.3 else None,
                "language": rng.choice(["en", "en", "en", "de", "fr", "ja", "es"]),
                "createdAt": iso_ms(created),
                "lastActiveAt": iso_ms(rng.randint(start_ms, end_ms)),
                "disabled": rng.random() < 0.03,
                "balance": round(rng.choice([0, 0, 0, 25.5, 100]), 2),
                "roleKey": rng.choice(["learner", "learner", "learner", "manager", "admin"]),
                "externalCustomerId": f"ext-{n:06d}" if rng.random() < 0.5 else None,
                "learnerUserId": None,
                "managerUserId": None,
                "asset": None,
                "ref1": rng.choice(["Customer", "Partner", "Employee"]),
                "ref2": rng.choice(["Developer", "DevOps", "Manager", "Security"]),
                "ref4": f"Company {rng.randint(1, 400)}",
                "ref5": None,
                "ref6": rng.choice(["Individual contributor", "People manager"]),
                "ref7": rng.choice(["Americas", "EMEA", "APAC"]),
                "ref8": rng.choice(COUNTRIES),
                "ref9": None,
                "ref10": rng.choice(["Engineering", "Sales", "Support", "Marketing"]),
                "sfAccountId": f"001{rng.getrandbits(48):012X}",
                "sfContactId": f"003{rng.getrandbits(48):012X}",
                "stripeCustomerId": None,
                "customFields": {"team": rng.choice(["alpha", "beta", "gamma"])},
                "allocatedLicenses": [],
                "allocatedLearningPaths": [],
                "purchasedCourses": [],
                "purchasedBundles": [],
                "waitlistedCourses": [],
            }
        )

    content = []
    for n in range(60):
        created = start_ms - rng.randint(10, 600) * 86_400_000
        title = f"{rng.choice(TOPICS)} {n + 1}"
        kind = rng.choice(["course", "course", "learningPath", "video", "article"])
        price = rng.choice([0, 0, 0, 4900, 9900])
        content.append(
            {
                "id": _uuid(rng),
                "kind": kind,
                "title": title,
                "slug": title.lower().replace(" ", "-").replace("/", "-"),
                "sku": f"SKU-{n + 1:04d}",
                "source": "native",
                "status": rng.choice(["published", "published", "draft"]),
                "language": "en",
                "description": f"Learn {title.lower()} step by step.",
                "metaTitle": title,
                "metaDescription": f"{title} course",
                "asset": f"https://cdn.example.com/assets/{n + 1}.png",
                "assetAltText": f"{title} cover",
                "contentTypeLabel": kind.capitalize(),
                "authorsAndInstructors": [rng.choice(FIRST_NAMES) + " " + rng.choice(LAST_NAMES)],
                "tags": rng.sample(list(TOPICS), 2),
                "customFields": {},
                "createdAt": iso_ms(created),
                "updatedAt": iso_ms(created + rng.randint(0, 90) * 86_400_000),
                "courseStartDate": iso_ms(created) if kind == "course" else None,
                "courseEndDate": None,
                "enrollmentStartDate": None,
                "enrollmentEndDate": None,
                "enrollmentCount": rng.randint(0, 5000),
                "seatsLimit": rng.choice([None, 50, 100]),
                "waitlistCount": 0,
                "priceInCents": price,
                "suggestedRetailPriceInCents": price,
                "freeWithRegistration": price == 0,
                "hasChildren": kind == "learningPath",
                "waitlistingEnabled": False,
                "waitlistingTriggered": False,
                "url": f"https://{host}/learn/course/{n + 1}",
            }
        )
    courses = [c for c in content if c["kind"] == "course"] or content

    meetings = []
    for n in range(40):
        course = rng.choice(courses)
        begins = rng.randint(start_ms, end_ms)
        meetings.append(
            {
                "id": _uuid(rng),
                "title": f"Live session {n + 1}",
                "course": {"id": course["id"], "title": course["title"]},
                "startDate": iso_ms(begins),
                "endDate": iso_ms(begins + 3_600_000),
                "location": rng.choice(["Zoom", "Berlin office", "Online"]),
                "attendeeInfo": "Join 5 minutes early.",
                "instructors": [rng.choice(FIRST_NAMES) + " " + rng.choice(LAST_NAMES)],
            }
        )

    coupons = []
    for n in range(50):
        percent = rng.choice([None, 10, 25, 50, 100])
        coupons.append(
            {
                "id": _uuid(rng),
                "code": f"LEARN{n:03d}",
                "active": rng.random() < 0.8,
                "allowMultipleInCart": False,
                "amountOffInCents": None if percent else rng.choice([500, 1000]),
                "percentOff": percent,
                "appliesToUser": None,
                "maxRedemptions": rng.choice([None, 10, 100]),
                "timesRedeemed": rng.randint(0, 10),
                "redeemBy": iso_ms(end_ms + rng.randint(1, 300) * 86_400_000),
            }
        )

    attempts = []
    for _ in range(max(50, users // 2)):
        user = rng.choice(user_rows)
        course = rng.choice(courses)
        created = rng.randint(start_ms, end_ms)
        grade = rng.randint(20, 100)
        attempts.append(
            {
                "id": _uuid(rng),
                "status": "finished",
                "grade": grade,
                "passed": grade >= 70,
                "timeElapsedInSeconds": rng.randint(60, 3600),
                "createdAt": iso_ms(created),
                "updatedAt": iso_ms(created + rng.randint(60_000, 3_600_000)),
                "courseId": course["id"],
                "course": {"title": course["title"]},
                "assessment": {"id": _uuid(rng), "title": f"Quiz: {course['title']}", "type": "quiz"},
                "user": {"id": user["id"], "email": user["email"], "clientId": user["clientId"]},
                "answers": [
                    {
                        "id": _uuid(rng),
                        "question": f"Question {q + 1}",
                        "answer": rng.choice("ABCD"),
                        "correct": rng.random() < 0.7,
                    }
                    for q in range(3)
                ],
            }
        )

    names = list(EVENT_ENDPOINTS)
    weights = [EVENT_ENDPOINTS[n][0] for n in names]
    chosen = rng.choices(names, weights=weights, k=events)
    span = end_ms - start_ms
    per_endpoint: dict[str, list[tuple[int, dict[str, Any]]]] = {n: [] for n in names}
    for endpoint in chosen:
        ms = start_ms + int(rng.random() * span)
        user = rng.choice(user_rows)
        course = rng.choice(courses)
        per_endpoint[endpoint].append(
            (ms, _event(endpoint, rng, ms, user, course, company_id, host, subdomain, coupons))
        )

    event_ms: dict[str, list[int]] = {}
    event_json: dict[str, list[bytes]] = {}
    for endpoint, rows in per_endpoint.items():
        rows.sort(key=lambda r: r[0])
        event_ms[endpoint] = [ms for ms, _ in rows]
        event_json[endpoint] = [json.dumps(ev, separators=(",", ":"), ensure_ascii=False).encode() for _, ev in rows]

    return Dataset(
        users=user_rows,
        resources={
            "users": user_rows,
            "content": content,
            "meetings": meetings,
            "clients": clients,
            "assessmentAttempts": attempts,
            "coupons": coupons,
        },
        event_ms=event_ms,
        event_json=event_json,
        start=start,
        end=end,
    )


def dataset_from_events(
    events: dict[str, list[dict[str, Any]]],
    *,
    start: datetime,
    end: datetime,
    resources: dict[str, list[dict[str, Any]]] | None = None,
) -> Dataset:
    """A dataset holding exactly the given events (tests build edge cases with it)."""
    event_ms: dict[str, list[int]] = {name: [] for name in EVENT_ENDPOINTS}
    event_json: dict[str, list[bytes]] = {name: [] for name in EVENT_ENDPOINTS}
    for endpoint, rows in events.items():
        keyed = sorted(((parse_date_param(row["timestamp"], "any"), row) for row in rows), key=lambda r: r[0])
        event_ms[endpoint] = [ms for ms, _ in keyed]
        event_json[endpoint] = [json.dumps(row).encode() for _, row in keyed]
    all_resources = {name: [] for name in CURSOR_ENDPOINTS}
    all_resources.update(resources or {})
    return Dataset(
        users=all_resources["users"],
        resources=all_resources,
        event_ms=event_ms,
        event_json=event_json,
        start=start,
        end=end,
    )


def _user_detail(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": user["id"],
        "clientId": user["clientId"],
        "client": None,
        "departmentId": None,
        "country": user["country"],
        "state": user["state"],
        "ref1": user["ref1"],
        "ref2": user["ref2"],
        "ref4": user["ref4"],
        "ref6": user["ref6"],
        "ref7": user["ref7"],
        "ref8": user["ref8"],
        "ref9": user["ref9"],
        "ref10": user["ref10"],
        "sfAccountId": user["sfAccountId"],
        "sfContactId": user["sfContactId"],
        "stripeCustomerId": user["stripeCustomerId"],
    }


def _event(  # noqa: PLR0917 - one branch per event shape reads best
    endpoint: str,
    rng: random.Random,
    ms: int,
    user: dict[str, Any],
    course: dict[str, Any],
    company_id: str,
    host: str,
    subdomain: str,
    coupons: list[dict[str, Any]],
) -> dict[str, Any]:
    ts = iso_ms(ms)
    company = {"companyId": company_id, "companyHost": host, "companySubdomain": subdomain}
    if endpoint in {"courseAction", "courseEnrollment", "courseCertificate"}:
        kind = {
            "courseAction": rng.choice(["started", "completed", "enrolled", "accessRevoked"]),
            "courseEnrollment": "enrolled",
            "courseCertificate": "certificateGranted",
        }[endpoint]
        return {
            "id": _uuid(rng),
            "companyId": company_id,
            "source": rng.choice(["learner", "admin", "api"]),
            "type": kind,
            "timestamp": ts,
            "notifiableId": course["id"],
            "courseSku": course["sku"],
            "courseTitle": course["title"],
            "user": user["email"],
            "userDetail": _user_detail(user),
        }
    if endpoint == "courseCompletion":
        return {
            "id": _uuid(rng),
            "companyId": company_id,
            "event": "courseCompletion",
            "source": "learner",
            "type": "completed",
            "timestamp": ts,
            "updatedAt": ts,
            "license": None,
            "notifiableId": course["id"],
            "title": course["title"],
            "user": user["email"],
            "userDetail": _user_detail(user),
        }
    if endpoint == "courseView":
        section = rng.randint(1, 5)
        lesson = rng.randint(1, 8)
        topic = rng.choice(TOPICS)
        return {
            "companyId": company_id,
            "courseId": course["id"],
            "courseSku": course["sku"],
            "courseTitle": course["title"],
            "sectionId": f"{course['id'][:8]}-s{section}",
            "sectionSlug": f"section-{section}",
            "sectionTitle": f"Section {section}",
            "lessonId": f"{course['id'][:8]}-l{section}-{lesson}",
            "lessonSlug": f"lesson-{lesson}",
            "lessonTitle": f"Lesson {lesson}",
            "topicId": f"{course['id'][:8]}-t{section}-{lesson}",
            "topicTitle": topic,
            "timestamp": ts,
            "user": user["email"],
            "userDetail": _user_detail(user),
        }
    if endpoint in {"login", "visit"}:
        event = {**company, "event": endpoint, "timestamp": ts, "user": user["email"]}
        event["userDetail"] = _user_detail(user)
        if endpoint == "login":
            browser = rng.choice(BROWSERS)
            event["userAgent"] = f"Mozilla/5.0 ({browser})"
            event["browserInfo"] = {"name": browser, "version": str(rng.randint(90, 130))}
        return event
    if endpoint == "learningPathAction":
        return {
            "id": _uuid(rng),
            "companyId": company_id,
            "source": "learner",
            "type": rng.choice(["started", "completed", "milestoneCompleted"]),
            "timestamp": ts,
            "notifiableId": course["id"],
            "learningPathTitle": f"Path: {course['title']}",
            "learningPathSku": f"LP-{course['sku']}",
            "milestoneTitle": rng.choice([None, "Milestone 1", "Milestone 2"]),
            "user": user["email"],
            "userDetail": _user_detail(user),
        }
    if endpoint == "coursePurchase":
        coupon = rng.choice([None, None, None, rng.choice(coupons)])
        success = rng.random() < 0.95
        return {
            "id": _uuid(rng),
            "transactionId": _uuid(rng),
            "orderId": _uuid(rng),
            "chargeId": f"ch_{rng.getrandbits(64):016x}",
            "groupId": None,
            "timestamp": ts,
            "companyId": company_id,
            "coupon": {"id": coupon["id"], "code": coupon["code"]} if coupon else None,
            "couponCode": coupon["code"] if coupon else None,
            "purchasableId": course["id"],
            "purchasableType": "course",
            "revenueType": "oneTime",
            "quantity": rng.choice([1, 1, 1, 2, 5]),
            "variation": None,
            "shippingMethod": None,
            "type": "purchase",
            "sku": course["sku"],
            "slug": course["slug"],
            "title": course["title"],
            "courseStartDate": course["courseStartDate"],
            "success": success,
            "failureCode": None if success else "card_declined",
            "failureMessage": None if success else "Your card was declined.",
            "giftRecipientEmail": None,
            "user": user["email"],
            "userDetail": {
                "id": user["id"],
                "stripeCustomerId": f"cus_{rng.getrandbits(48):012x}",
                "sfContactId": user["sfContactId"],
                "sfAccountId": user["sfAccountId"],
            },
            "referral": {"referrer": None, "referrer_type": None, "source": "direct"},
        }
    if endpoint == "emailCapture":
        return {
            **company,
            "event": "emailCapture",
            "timestamp": ts,
            "anonymousId": _uuid(rng),
            "source": "courseLanding",
            "notifiableId": course["id"],
            "notifiableType": "course",
            "courseId": course["id"],
            "courseSku": course["sku"],
            "courseTitle": course["title"],
            "user": user["email"],
        }
    if endpoint == "redemptionCodeRedeem":
        return {
            **company,
            "event": "redemptionCodeRedeem",
            "timestamp": ts,
            "redemptionCode": f"RC-{rng.getrandbits(32):08X}",
            "redemptionCodeGroupLabel": rng.choice(["Partner 2024", "Conference", "Internal"]),
            "user": user["email"],
            "userDetail": {"id": user["id"]},
        }
    raise ValueError(f"unknown event endpoint {endpoint}")


def _encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"pos:{position}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    padded = cursor + "=" * (-len(cursor) % 4)
    text = base64.urlsafe_b64decode(padded.encode()).decode()
    if not text.startswith("pos:"):
        raise ValueError("bad cursor")
    return int(text[4:])


@dataclass
class Scripted:
    """A one-off answer for the next matching request(s) (tests script failures with it)."""

    status: int
    count: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    path_contains: str = ""


@dataclass
class RecordedRequest:
    """What the fake saw: the path, the query parameters and whether auth was valid."""

    path: str
    params: dict[str, str]
    authorized: bool
    status: int = 0


class FakeThoughtIndustries:
    """The fake API server; start with ``with FakeThoughtIndustries(...) as api: api.url``."""

    def __init__(
        self,
        *,
        users: int = 300,
        events: int = 5000,
        days: float = 30,
        seed: int = 1,
        end: datetime = DEFAULT_END,
        api_key: str = DEFAULT_API_KEY,
        date_format: str = "any",
        envelopes: dict[str, str] | None = None,
        page_size: int = PAGE_SIZE,
        throttle_every: int = 0,
        retry_after: int = 1,
        dataset: Dataset | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        record_requests: bool = True,
    ) -> None:
        if date_format not in {"any", "epoch_ms", "iso8601"}:
            raise ValueError("date_format must be any, epoch_ms or iso8601")
        self.dataset = dataset or generate_dataset(users=users, events=events, days=days, seed=seed, end=end)
        self.api_key = api_key
        self.date_format = date_format
        self.envelopes = {name: env for name, (_, env) in EVENT_ENDPOINTS.items()}
        self.envelopes.update(envelopes or {})
        self.page_size = page_size
        self.throttle_every = throttle_every
        self.retry_after = retry_after
        self.record_requests = record_requests
        self.requests: list[RecordedRequest] = []
        self.scripted: list[Scripted] = []
        self._count = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The tenant root URL (what the tap's ``api_url`` setting takes)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeThoughtIndustries:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def serve_forever(self) -> None:
        """Serve in the current thread (script mode)."""
        self._server.serve_forever()

    def __enter__(self) -> FakeThoughtIndustries:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting -----------------------------------------------------------------------------
    def fail_next(
        self,
        status: int,
        *,
        count: int = 1,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        path_contains: str = "",
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` instead of data."""
        with self._lock:
            self.scripted.append(Scripted(status, count, dict(headers or {}), body, path_contains=path_contains))

    def delay_next(self, seconds: float, *, count: int = 1, path_contains: str = "") -> None:
        """Make the next ``count`` matching requests wait before answering (timeouts).

        Each waits ``seconds``, or less if its client gives up first (closes the connection).
        """
        with self._lock:
            self.scripted.append(Scripted(0, count, delay=seconds, path_contains=path_contains))

    def event_requests(self, endpoint: str) -> list[RecordedRequest]:
        """Recorded requests to one event endpoint."""
        return [r for r in self.requests if r.path.endswith(f"/events/{endpoint}")]

    # -- request handling -------------------------------------------------------------------------
    def _take_script(self, path: str) -> Scripted | None:
        with self._lock:
            for script in self.scripted:
                if script.path_contains in path:
                    script.count -= 1
                    if script.count <= 0:
                        self.scripted.remove(script)
                    return script
        return None

    def handle(
        self, path: str, params: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, str], bytes, float]:
        """Answer one GET: (status, headers, body, delay in seconds)."""
        authorized = authorization == f"Bearer {self.api_key}"
        recorded = RecordedRequest(path, params, authorized)
        if self.record_requests:
            with self._lock:
                self.requests.append(recorded)
        status, headers, body, delay = self._answer(path, params, authorized=authorized)
        recorded.status = status
        return status, headers, body, delay

    def _answer(  # noqa: PLR0911 - one return per kind of answer
        self, path: str, params: dict[str, str], *, authorized: bool
    ) -> tuple[int, dict[str, str], bytes, float]:
        if not authorized:
            return 401, {}, b"", 0.0  # the vendor answers 401 with an empty body
        script = self._take_script(path)
        delay = 0.0
        if script is not None:
            if script.status:
                return script.status, script.headers, script.body, 0.0
            delay = script.delay
        with self._lock:
            self._count += 1
            count = self._count
        if self.throttle_every and count % self.throttle_every == 0:
            headers = {"Retry-After": str(self.retry_after), "X-RateLimit-Remaining": "0"}
            return 429, headers, b'{"error":"Too Many Requests"}', 0.0
        prefix = "/incoming/v2/"
        if not path.startswith(prefix):
            return 404, {}, b'{"error":"Not Found"}', delay
        resource = path[len(prefix) :]
        try:
            if resource == "ping":
                return 200, {}, b'{"valid":true}', delay
            if resource.startswith("events/"):
                body = self._events_page(resource[len("events/") :], params)
            elif resource in CURSOR_ENDPOINTS:
                body = self._cursor_page(resource, params)
            else:
                return 404, {}, b'{"error":"Not Found"}', delay
        except KeyError:
            return 404, {}, b'{"error":"Not Found"}', delay
        except ValueError as exc:
            return 400, {}, json.dumps({"error": str(exc)}).encode(), delay
        return 200, {"X-RateLimit-Limit": "100"}, body, delay

    def _events_page(self, endpoint: str, params: dict[str, str]) -> bytes:
        times = self.dataset.event_ms[endpoint]
        encoded = self.dataset.event_json[endpoint]
        lo = 0
        hi = len(times)
        if "startDate" in params:
            lo = bisect.bisect_left(times, parse_date_param(params["startDate"], self.date_format))
        if "endDate" in params:
            hi = bisect.bisect_right(times, parse_date_param(params["endDate"], self.date_format))
        top = hi
        if params.get("cursor"):
            top = min(_decode_cursor(params["cursor"]), hi)
        bottom = max(lo, top - self.page_size)
        page = b",".join(reversed(encoded[bottom:top])) if top > bottom else b""
        has_more = bottom > lo
        envelope = self.envelopes[endpoint]
        if envelope == EVENTS:
            return b'{"events":[' + page + b"]}"
        page_info = json.dumps(
            {
                "perPage": self.page_size,
                "cursor": _encode_cursor(bottom) if has_more else None,
                "total": max(hi - lo, 0),
                "hasMore": has_more,
            }
        ).encode()
        if envelope == EVENTS_PAGEINFO:
            return b'{"events":[' + page + b'],"pageInfo":' + page_info + b"}"
        return b'{"data":{"APIEvents":{"pageInfo":' + page_info + b',"events":[' + page + b"]}}}"

    def _cursor_page(self, resource: str, params: dict[str, str]) -> bytes:
        rows = self.dataset.resources[resource]
        start = _decode_cursor(params["cursor"]) if params.get("cursor") else 0
        end = min(start + self.page_size, len(rows))
        has_more = end < len(rows)
        return json.dumps(
            {
                CURSOR_ENDPOINTS[resource]: rows[start:end],
                "pageInfo": {"hasMore": has_more, "cursor": _encode_cursor(end) if has_more else None},
            },
            ensure_ascii=False,
        ).encode()


def _make_handler(api: FakeThoughtIndustries) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real API behind a load balancer
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            status, headers, body, delay = api.handle(parts.path, params, self.headers.get("Authorization"))
            if delay:
                hold_answer(self.connection, delay)
            try:
                self.send_response(status)
                if body:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return  # quiet: the benchmark and tests read stdout/stderr

    return Handler


def main(argv: list[str] | None = None) -> None:
    """Script entry point: print the base URL, then serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--days", type=float, default=90)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--end",
        default=DEFAULT_END.strftime("%Y-%m-%dT%H:%M:%SZ"),
        help="end of the generated data (ISO 8601); data covers --days before it",
    )
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--date-format", choices=["any", "epoch_ms", "iso8601"], default="any")
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE)
    parser.add_argument("--throttle-every", type=int, default=0, help="every Nth request gets 429")
    parser.add_argument("--retry-after", type=int, default=1)
    args = parser.parse_args(argv)
    end = datetime.fromisoformat(args.end)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    api = FakeThoughtIndustries(
        users=args.users,
        events=args.events,
        days=args.days,
        seed=args.seed,
        end=end,
        api_key=args.api_key,
        date_format=args.date_format,
        page_size=args.page_size,
        throttle_every=args.throttle_every,
        retry_after=args.retry_after,
        host=args.host,
        port=args.port,
        record_requests=False,
    )
    print(api.url, flush=True)
    data = api.dataset
    print(
        f"fake Thought Industries API: {len(data.users)} users, {data.event_count} events from "
        f"{data.start:%Y-%m-%dT%H:%M:%SZ} to {data.end:%Y-%m-%dT%H:%M:%SZ}, api key {args.api_key!r}",
        file=sys.stderr,
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        api.serve_forever()


if __name__ == "__main__":
    main()
