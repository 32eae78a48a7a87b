"""Small builders for rows in the Django tables (integration tests)."""

from __future__ import annotations

from typing import Any

import psycopg

from cdc.member.kennitala import check_digit


def kennitala(n: int) -> str:
    """A valid, made-up kennitala, distinct for every ``n`` below 100,800."""
    day, month, year = 1 + n % 28, 1 + (n // 28) % 12, (n // 336) % 100
    century = "980"[(n // 33_600) % 3]
    for serial in range(20, 100):
        first8 = f"{day:02d}{month:02d}{year:02d}{serial:02d}"
        check = check_digit(first8)
        if check is not None:
            return f"{first8}{check}{century}"
    raise AssertionError("unreachable")


def insert_comrade(conn: psycopg.Connection[Any], n: int, **overrides: Any) -> int:
    row: dict[str, Any] = {
        "ssn": kennitala(n),
        "name": f"Member {n}",
        "birthday": "1980-01-02",
        "gender": n % 4,
        "housing_situation": n % 7,
        "date_joined": "2020-01-01T00:00:00+00:00",
        "reachable": True,
        "groupable": False,
    }
    row.update(overrides)
    cols = ", ".join(row)
    marks = ", ".join(["%s"] * len(row))
    cur = conn.execute(
        f"INSERT INTO membership_comrade ({cols}) VALUES ({marks}) RETURNING id",
        list(row.values()),
    )
    got = cur.fetchone()
    assert got is not None
    return int(got[0])


def insert_member(conn: psycopg.Connection[Any], n: int) -> int:
    """A comrade with ContactInfo, SimpleAddress and one primary Email."""
    cid = insert_comrade(conn, n)
    conn.execute(
        "INSERT INTO membership_contactinfo (comrade_id, phone, email, facebook, foreign_phone) "
        "VALUES (%s, %s, %s, '', '')", (cid, f"555{n:04d}", f"contact{n}@example.is"))
    conn.execute(
        "INSERT INTO membership_simpleaddress (comrade_id, street_address, postal_code, city, "
        "country) VALUES (%s, %s, '101', 'Reykjavík', 'Iceland')", (cid, f"Gata {n}"))
    conn.execute(
        "INSERT INTO communication_email (comrade_id, email, is_primary) VALUES (%s, %s, true)",
        (cid, f"member{n}@example.is"))
    return cid
