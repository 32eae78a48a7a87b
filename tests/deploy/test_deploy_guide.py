"""docs/deploy.md: its shell blocks parse, its links lead somewhere, the names it
uses are the ones the deploy files define, and its index script turns
firestore.indexes.json into one gcloud command per index."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.unit_verification import verify_units

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "deploy.md"


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), re.DOTALL)


def test_every_shell_block_of_the_guide_parses() -> None:
    blocks = shell_blocks()
    assert len(blocks) >= 10
    for block in blocks:
        result = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True,
                                check=False)
        assert result.returncode == 0, f"{result.stderr}\n{block}"


def test_every_relative_link_of_the_guide_exists() -> None:
    links = re.findall(r"\]\((?!https?:)([^)#]+)(?:#[^)]*)?\)", GUIDE.read_text())
    assert links
    missing = [link for link in links if not (GUIDE.parent / link).exists()]
    assert missing == []


@pytest.mark.parametrize("name", [
    "cdc-run@8080", "cdc-consume-firestore", "cdc-consume-audit", "cdc-pgpass",
    "/run/member-cdc/pgpass", "/etc/member-cdc/cdc.env", "/opt/member-cdc",
    "/usr/local/lib/member-cdc/", "CDC_DB_PASSWORD_SECRET", "cdc-consume-roster",
    "cdc-writeback",
])
def test_the_guide_installs_what_the_units_expect(name: str) -> None:
    units = "".join(path.read_text() for path in (ROOT / "deploy" / "systemd").iterdir())
    assert name in GUIDE.read_text()
    assert name.rstrip("/").split("@")[0] in units


def test_the_guide_names_every_alert_it_explains() -> None:
    rules = (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
    alerts = set(re.findall(r"- alert: (\w+)", rules))
    explained = set(re.findall(r"`(Cdc\w+)`", GUIDE.read_text()))
    assert explained == alerts


def test_the_index_script_makes_one_gcloud_command_per_index() -> None:
    script = re.search(r"python3 - <<'EOF' \| sh -x\n(.*?)\nEOF\n", GUIDE.read_text(), re.DOTALL)
    assert script is not None
    result = subprocess.run([sys.executable, "-c", script.group(1)], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    commands = result.stdout.splitlines()
    creates = [c for c in commands if c.startswith("gcloud firestore indexes composite create")]
    updates = [c for c in commands if c.startswith("gcloud firestore indexes fields update")]
    assert len(creates) == (ROOT / "firestore.indexes.json").read_text().count('"queryScope"')
    assert "--collection-group=sync_audit --query-scope=collection" in creates[0]
    assert "--field-config=field-path=kennitala,order=ascending" in creates[0]
    assert sorted(u.split()[5] for u in updates) == ["after", "before"]
    assert len(commands) == len(creates) + len(updates)


def test_the_exporter_units_the_guide_writes_pass_systemd_analyze_verify(
        tmp_path: Path) -> None:
    units = dict(re.findall(r"cat > dist/([\w-]+\.service) <<UNIT\n(.*?\n)UNIT\n",
                            GUIDE.read_text(), re.DOTALL))
    assert sorted(units) == ["postgres-exporter.service", "stackdriver-exporter.service"]
    values = {"$DB_HOST": "db.example.org", "$DB_NAME": "members", "$PROJECT": "my-project"}
    for name, text in units.items():
        for variable, value in values.items():
            text = text.replace(variable, value)
        assert "$" not in text, name
        units[name] = text
    assert verify_units(tmp_path, units, sorted(units)) == ""
