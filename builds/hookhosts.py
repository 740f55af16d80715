"""What each git host sends to a webhook: how it proves the secret, how it names the event and
the delivery, and where a push says which ref moved to which commit. Pure functions of the
headers and the raw body; no database.

- GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, `X-GitHub-Event`
  (push, ping...), `X-GitHub-Delivery`.
- GitLab: `X-Gitlab-Token: <the secret itself>`, `X-Gitlab-Event` (Push Hook, Tag Push Hook),
  `Idempotency-Key` (GitLab 17.4+, the same on retries), `X-Gitlab-Event-UUID`,
  `X-Gitlab-Webhook-UUID`.
- Gitea: `X-Gitea-Signature: <hex HMAC-SHA256>`, `X-Gitea-Event`, `X-Gitea-Delivery`.
- Forgejo: as Gitea under `X-Forgejo-*` (and the Gitea names too).

Gitea and Forgejo also send GitHub's event and delivery headers (and X-Hub-Signature-256),
so they are recognised first: their own signature header is the one checked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

ZERO = re.compile(r"0+")
SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass(frozen=True)
class Host:
    name: str
    event_headers: tuple[str, ...]
    delivery_headers: tuple[str, ...]
    signature_headers: tuple[str, ...]
    push_events: frozenset[str]
    ping_events: frozenset[str] = frozenset()
    prefix: str = ""  # GitHub's "sha256="
    token: bool = False  # GitLab: the header holds the secret, not an HMAC
    marks: tuple[str, ...] = ()  # headers only this host sends (default: event and signature)

    def sent_by(self, headers: Mapping[str, str]) -> bool:
        marks = self.marks or (*self.event_headers, *self.signature_headers)
        return any(name in headers for name in marks)

    def header(self, headers: Mapping[str, str], names: tuple[str, ...]) -> str:
        value = next((headers[name] for name in names if name in headers), "")
        return value if value.isprintable() else ""  # no control characters reach a row

    def event(self, headers: Mapping[str, str]) -> str:
        return self.header(headers, self.event_headers)[:50]

    def delivery(self, headers: Mapping[str, str], body: bytes) -> str:
        """The host's delivery id (the same when it redelivers); without one, the body's hash,
        so an identical body sent again is still a replay."""
        given = self.header(headers, self.delivery_headers).strip()
        return given[:100] if given else "sha256:" + hashlib.sha256(body).hexdigest()

    def signed(self, headers: Mapping[str, str], body: bytes, secret: str) -> bool | None:
        """True: the secret is proven; False: a wrong one; None: no signature at all."""
        given = self.header(headers, self.signature_headers).strip()
        if not given:
            return None
        if self.token:
            expected = secret
        else:
            if not given.lower().startswith(self.prefix):
                return False
            given = given[len(self.prefix) :].lower()
            expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        # Bytes: compare_digest refuses str with non-ASCII characters (a header may hold any).
        return hmac.compare_digest(given.encode(errors="replace"), expected.encode())


GITHUB = Host(
    "github",
    event_headers=("X-GitHub-Event",),
    delivery_headers=("X-GitHub-Delivery",),
    signature_headers=("X-Hub-Signature-256",),
    push_events=frozenset({"push"}),
    ping_events=frozenset({"ping"}),
    prefix="sha256=",
)
GITLAB = Host(
    "gitlab",
    event_headers=("X-Gitlab-Event",),
    delivery_headers=("Idempotency-Key", "X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"),
    signature_headers=("X-Gitlab-Token",),
    push_events=frozenset({"Push Hook", "Tag Push Hook"}),
    token=True,
)
FORGEJO = Host(
    "forgejo",
    event_headers=("X-Forgejo-Event", "X-Gitea-Event"),
    delivery_headers=("X-Forgejo-Delivery", "X-Gitea-Delivery"),
    signature_headers=("X-Forgejo-Signature", "X-Gitea-Signature"),
    push_events=frozenset({"push"}),
    marks=("X-Forgejo-Event", "X-Forgejo-Signature", "X-Forgejo-Delivery"),
)
GITEA = Host(
    "gitea",
    event_headers=("X-Gitea-Event",),
    delivery_headers=("X-Gitea-Delivery",),
    signature_headers=("X-Gitea-Signature",),
    push_events=frozenset({"push"}),
)
# In this order: Forgejo sends Gitea's headers too, and both send GitHub's.
HOSTS = (FORGEJO, GITEA, GITLAB, GITHUB)


def identify(headers: Mapping[str, str]) -> Host | None:
    return next((host for host in HOSTS if host.sent_by(headers)), None)


@dataclass(frozen=True)
class Push:
    """A ref that moved: `branch` or `tag` (one is set) now at `commit`."""

    ref: str
    commit: str
    branch: str = ""
    tag: str = ""


class Unusable(ValueError):
    """A signed delivery that asks for no build; str() is the short reason answered."""

    def __init__(self, reason: str, status: int = 200) -> None:
        super().__init__(reason)
        self.status = status


def _sha(value: object) -> str | None:
    return value if isinstance(value, str) and SHA.fullmatch(value) else None


def _peeled(payload: dict[str, object]) -> str | None:
    """The commit a tag push points at, where the host says it: an annotated tag's `after` is
    the tag object (GitLab: checkout_sha; GitHub and Gitea: head_commit.id)."""
    head = payload.get("head_commit")
    return _sha(payload.get("checkout_sha")) or _sha(
        head.get("id") if isinstance(head, dict) else None
    )


def parse_push(host: Host, event: str, body: bytes) -> Push:
    """The push a signed delivery carries. Raises Unusable: a ping or another event (200), a
    deleted ref (200), a body that is no push (400)."""
    if event in host.ping_events:
        raise Unusable("ping: the webhook works")
    if event not in host.push_events:
        raise Unusable(f"event {event or '(none)'!r} needs no build")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise Unusable(
            "the body is not JSON (set the content type to application/json)", 400
        ) from None
    if not isinstance(payload, dict):
        raise Unusable("the body is not a JSON object", 400)
    ref, after = payload.get("ref"), payload.get("after")
    if not isinstance(ref, str) or not isinstance(after, str):
        raise Unusable("a push needs ref and after", 400)
    if len(ref) > 255 or not ref.isprintable():  # NUL, lone surrogates: no database stores them
        raise Unusable("ref is not a git ref name", 400)
    if payload.get("deleted") is True or ZERO.fullmatch(after):
        raise Unusable(f"{ref[:200]} was deleted")
    if _sha(after) is None:
        raise Unusable("after is not a commit id", 400)
    if ref.startswith("refs/heads/"):
        return Push(ref, after, branch=ref.removeprefix("refs/heads/"))
    if ref.startswith("refs/tags/"):
        return Push(ref, _peeled(payload) or after, tag=ref.removeprefix("refs/tags/"))
    raise Unusable("ref is neither a branch nor a tag", 400)
