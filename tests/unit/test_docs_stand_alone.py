"""The documentation stands on its own: it cites no file outside the
repository (DESIGN.md, DEVELOPERS.md) and no file that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OUTSIDE = re.compile(r"DESIGN\.md|DEVELOPERS\.md|\.\./shared")
# `a/file.py`, [text](link), and bare paths under the repository's top directories
REFERENCES = re.compile(
    r"`([\w./-]+\.(?:py|md|sql|json|yml|yaml|toml|txt|sh))`"
    r"|\]\(([^)#\s]+)\)"
    r"|(?<![\w/.-])((?:cdc|consumers|tests|bench|sql|scripts|docs|deploy)/[\w/.-]*\.[a-z]+)\b")
# Files a guide tells the operator to make or download, outside the repository.
MADE_BY_THE_OPERATOR = {"db-ca.pem", "firebase.json", "sha256sums.txt",
                        "kennitalas.txt"}  # the voting roster: an object in Cloud Storage
FILES = {p.name for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts
         and ".venv" not in p.parts}


def _name(doc: Path) -> str:
    return str(doc.relative_to(ROOT))


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_a_document_cites_nothing_outside_the_repository(doc: Path) -> None:
    found = [line for line in doc.read_text().splitlines() if OUTSIDE.search(line)]
    assert not found, f"{_name(doc)} cites files that are not in the repository: {found}"


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_every_file_a_document_names_exists(doc: Path) -> None:
    missing = []
    for match in REFERENCES.finditer(doc.read_text()):
        ref = next(group for group in match.groups() if group)
        if "://" in ref or ref.startswith(("mailto:", "/")) or ref in MADE_BY_THE_OPERATOR:
            continue
        if "/" not in ref and ref in FILES:  # a file named in the text about its folder
            continue
        if not any((base / ref).exists() for base in (doc.parent, ROOT)):
            missing.append(ref)
    assert not missing, f"{_name(doc)} names files that do not exist: {missing}"
