"""A person who clones nncc can trace every constant: nothing cites a file outside the
repository, and every citation of the project's own sources points at something that exists."""

from __future__ import annotations

import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ROOT / "docs" / "sources.md"
# Working notes of the founding sessions live outside the repository; the project carries its
# own sources document instead.
OUTSIDE = ("CALIBRATION.md", "ARCHITECTURE.md", "shared/design", "shared/seeds")


def tracked_text_files() -> list[pathlib.Path]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
    return [ROOT / p for p in out if p.endswith((".py", ".md", ".toml", ".txt", ".cfg")) and (ROOT / p).is_file()]


def test_nothing_cites_a_file_outside_the_repository():
    offenders = [f"{path.relative_to(ROOT)}: {needle}" for path in tracked_text_files()
                 if path.name != "test_sources.py"
                 for needle in OUTSIDE if needle in path.read_text(errors="replace")]
    assert not offenders, offenders


def test_cited_docs_exist_and_cited_sections_are_headings():
    headings = {m.group(1).strip() for m in re.finditer(r"^#+ (.+)$", SOURCES.read_text(), re.M)}
    missing, unknown = [], []
    for path in tracked_text_files():
        text = path.read_text(errors="replace")
        for doc in set(re.findall(r"\bdocs/[\w./-]+\.md", text)):
            if not (ROOT / doc).is_file():
                missing.append(f"{path.relative_to(ROOT)}: {doc}")
        for section in re.findall(r'docs/sources\.md,? (?:section )?"([^"]+)"', text):
            if section not in headings:
                unknown.append(f"{path.relative_to(ROOT)}: \"{section}\"")
    assert not missing, missing
    assert not unknown, f"cited sections not in docs/sources.md ({sorted(headings)}): {unknown}"
