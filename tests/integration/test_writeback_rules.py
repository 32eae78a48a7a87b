"""deploy/firestore/firestore.rules, held against the Firestore emulator.

The rules are loaded into a project of their own (the emulator keeps rules per
project, so nothing else sees them). Requests go through the REST API with the
emulator's unsigned ID tokens, as the portal's client SDK would send them;
the service account the pipeline uses is not bound by rules.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.factories import kennitala
from tests.services import Services

pytestmark = pytest.mark.integration

RULES = Path(__file__).resolve().parents[2] / "deploy" / "firestore" / "firestore.rules"
MINE, OTHER = kennitala(1), kennitala(2)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class Portal:
    """What a signed-in member's browser may do, through the emulator's REST API."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.project = f"rules-{uuid.uuid4().hex[:8]}"
        self.call("PUT", f"/emulator/v1/projects/{self.project}:securityRules",
                  {"rules": {"files": [{"name": "firestore.rules",
                                        "content": RULES.read_text()}]}})

    def token(self, uid: str, kennitala: str | None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": f"https://securetoken.google.com/{self.project}", "aud": self.project,
            "iat": now, "exp": now + 3600, "auth_time": now, "sub": uid, "user_id": uid,
            "firebase": {"sign_in_provider": "custom", "identities": {}}}
        if kennitala is not None:
            claims["kennitala"] = kennitala
        return f"{_b64({'alg': 'none', 'type': 'JWT'})}.{_b64(claims)}."

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             token: str | None = None) -> int:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://{self.host}{path}", data=data,
                                         method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def documents(self, path: str = "") -> str:
        return f"/v1/projects/{self.project}/databases/(default)/documents{path}"

    def create(self, token: str | None, request_id: str, **overrides: Any) -> int:
        fields: dict[str, Any] = {"kennitala": MINE, "uid": "uid-mine", "version": "v",
                                  "status": "pending", "fields": {"profile.email": "a@b.is"}}
        fields.update(overrides)
        return self.call("POST", self.documents(f"/member_edits?documentId={request_id}"),
                         {"fields": {k: _value(v) for k, v in fields.items()}}, token)


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {"mapValue": {"fields": {k: _value(v) for k, v in value.items()}}}
    return {"stringValue": value}


@pytest.fixture
def portal(services: Services) -> Portal:
    return Portal(os.environ.get("FIRESTORE_EMULATOR_HOST", services.firestore_host))


def test_a_member_creates_requests_for_their_own_kennitala_only(portal: Portal) -> None:
    me = portal.token("uid-mine", MINE)
    assert portal.create(me, "own") == 200
    assert portal.create(me, "other", kennitala=OTHER) == 403
    assert portal.create(me, "as-someone", uid="uid-other") == 403
    assert portal.create(me, "decided", status="applied") == 403
    assert portal.create(me, "birthday", fields={"profile.birthday": "1990-01-01"}) == 403
    assert portal.create(portal.token("uid-mine", None), "no-claim") == 403
    assert portal.create(None, "signed-out") == 403


def test_a_member_reads_their_own_requests_and_cannot_change_them(portal: Portal) -> None:
    me, other = portal.token("uid-mine", MINE), portal.token("uid-other", OTHER)
    assert portal.create(me, "mine") == 200
    assert portal.call("GET", portal.documents("/member_edits/mine"), token=me) == 200
    assert portal.call("GET", portal.documents("/member_edits/mine"), token=other) == 403
    assert portal.call("PATCH", portal.documents("/member_edits/mine?updateMask.fieldPaths="
                                                 "status"),
                       {"fields": {"status": {"stringValue": "applied"}}}, me) == 403
    assert portal.call("DELETE", portal.documents("/member_edits/mine"), token=me) == 403
    query = {"structuredQuery": {"from": [{"collectionId": "member_edits"}], "where": {
        "fieldFilter": {"field": {"fieldPath": "kennitala"}, "op": "EQUAL",
                        "value": {"stringValue": MINE}}}}}
    assert portal.call("POST", portal.documents(":runQuery"), query, me) == 200
    assert portal.call("POST", portal.documents(":runQuery"), query, other) == 403


def test_a_member_reads_only_their_own_member_document_and_writes_none(portal: Portal) -> None:
    me = portal.token("uid-mine", MINE)
    assert portal.call("GET", portal.documents(f"/members/{MINE}"), token=me) in (200, 404)
    assert portal.call("GET", portal.documents(f"/members/{OTHER}"), token=me) == 403
    assert portal.call("PATCH", portal.documents(f"/members/{MINE}"),
                       {"fields": {"kennitala": {"stringValue": MINE}}}, me) == 403
