"""A person who clones nncc can trace every constant: nothing cites a file outside the
repository, and every citation of the project's own sources points at something that exists."""

from __future__ import annotations

import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ROOT / "docs" / "sources.md"
# Files nncc writes (not sources it cites).
OUTPUTS = {"report.md"}


def tracked_text_files() -> list[pathlib.Path]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
    return [ROOT / p for p in out if p.endswith((".py", ".md", ".toml", ".txt", ".cfg")) and (ROOT / p).is_file()]


def test_nothing_cites_a_file_outside_the_repository():
    # Every Markdown file a source names is one of the repository's own, and no path climbs out of it.
    files = tracked_text_files()
    own = {p.name for p in files if p.suffix == ".md"} | OUTPUTS
    offenders = []
    for path in files:
        text = path.read_text(errors="replace")
        offenders += [f"{path.relative_to(ROOT)}: {name}" for name in set(re.findall(r"[\w.-]+\.md\b", text))
                      if name not in own]
        offenders += [f"{path.relative_to(ROOT)}: ../{m}" for m in set(re.findall(r"\.\./(shared|seeds|design)\b", text))]
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
