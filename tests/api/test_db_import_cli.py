"""`callpilot db import`: a company's own data, all or nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CALLPILOT = str(Path(sys.executable).parent / "callpilot")

GOOD = {
    "customers": [
        {
            "id": "ACME-1",
            "name": "Ada Lovelace",
            "email": "ada@acme.example",
            "phone": "+15550109999",
            "tier": "platinum",
            "status": "active",
        }
    ],
    "orders": [
        {
            "number": "55501",
            "customer_id": "ACME-1",
            "status": "shipped",
            "total": "42.00",
            "currency": "EUR",
            "order_date": "2026-11-01",
            "delivered_date": None,
            "items": [
                {"sku": "AN-1", "name": "Analytical Engine Manual", "quantity": 2, "unit_price": "21.00"}
            ],
        }
    ],
    "tickets": [
        {
            "id": "ACME-T1",
            "customer_id": "ACME-1",
            "subject": "Where is my manual?",
            "status": "open",
            "created_at": "2026-11-10T09:00:00Z",
        }
    ],
    "policies": [
        {"type": "sla", "title": "ACME SLA", "body": "Platinum customers get an answer within 1 hour."}
    ],
    "articles": [
        {
            "id": "ACME-KB-1",
            "title": "Tracking a parcel",
            "body": "Use the tracking link.",
            "tags": ["shipping"],
        }
    ],
}


def run(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CALLPILOT_DATA_DIR": str(data_dir), "CALLPILOT_DATABASE_URL": ""}
    return subprocess.run([CALLPILOT, *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_import_good_file_then_reject_a_bad_one_whole(tmp_path: Path, data_dir: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(GOOD))
    result = run("db", "import", str(good), data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "1 customers" in result.stdout or "1 customer" in result.stdout

    bad_doc = json.loads(json.dumps(GOOD))
    bad_doc["customers"].append(
        {
            "id": "ACME-2",
            "name": "Charles Babbage",
            "email": "cb@acme.example",
            "phone": "+15550108888",
            "tier": "gold",
            "status": "active",
        }
    )
    bad_doc["orders"].append(dict(bad_doc["orders"][0], number="55502", customer_id="NOBODY"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(bad_doc))
    rejected = run("db", "import", str(bad), data_dir=data_dir)
    assert rejected.returncode == 2
    assert "nothing was changed" in rejected.stderr
    assert "orders[1].customer_id" in rejected.stderr

    # Nothing from the bad file landed: import the good file again and check
    # the customer count it reports as updated, not created.
    again = run("db", "import", str(good), data_dir=data_dir)
    assert again.returncode == 0
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import asyncio,sys\n"
                "from callpilot.server.store import Store\n"
                "async def main():\n"
                f"    s = await Store.open('sqlite+aiosqlite:///{data_dir / 'callpilot.db'}')\n"
                "    print(await s.get_customer('ACME-2') is None, await s.get_order('55502') is None,"
                " (await s.get_order('55501')).total)\n"
                "    await s.close()\n"
                "asyncio.run(main())\n"
            ),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.stdout.split() == ["True", "True", "42.00"], check.stderr


def test_unreadable_and_malformed_files(tmp_path: Path, data_dir: Path) -> None:
    missing = run("db", "import", str(tmp_path / "nope.json"), data_dir=data_dir)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"customers": [')
    malformed = run("db", "import", str(broken), data_dir=data_dir)
    assert malformed.returncode == 2 and "not valid JSON" in malformed.stderr and "line 1" in malformed.stderr


def test_every_problem_is_printed(tmp_path: Path, data_dir: Path) -> None:
    bad_doc = json.loads(json.dumps(GOOD))
    bad_doc["customers"][0]["email"] = "not-an-address"
    bad_doc["orders"][0]["items"][0]["quantity"] = "two"
    bad_doc["articles"][0]["title"] = ""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(bad_doc))
    rejected = run("db", "import", str(bad), data_dir=data_dir)
    assert rejected.returncode == 2
    lines = rejected.stderr.splitlines()
    assert "nothing was changed" in lines[0] and "3 problems" in lines[0]
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "customers[0].email",
        "orders[0].items[0].quantity",
        "articles[0].title",
    ]


def test_repeated_key_and_deep_nesting_are_refused(tmp_path: Path, data_dir: Path) -> None:
    repeated = tmp_path / "repeated.json"
    repeated.write_text('{"customers": [], "customers": []}')
    result = run("db", "import", str(repeated), data_dir=data_dir)
    assert result.returncode == 2 and 'repeats the key "customers"' in result.stderr
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    result = run("db", "import", str(deep), data_dir=data_dir)
    assert result.returncode == 2 and "nests lists and objects" in result.stderr
    assert "Traceback" not in result.stderr
