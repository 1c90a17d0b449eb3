"""The documentation matches the tree: every path the README's layout section names
exists, every top-level entry of the tree is named there, and every relative link of
the README, CHANGELOG, docs/ and the roles' READMEs reaches a file."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Not layout: the README itself and git's own file.
UNNAMED = {"README.md", ".gitignore", ".git"}


def layout_entries():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Layout"):]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    entries = [line.split()[0] for line in block.splitlines() if line and not line.startswith(" ")]
    mentioned = set(re.findall(r"[\w.-]+", block))
    return entries, mentioned


def test_every_path_the_layout_names_exists():
    entries, _ = layout_entries()
    assert len(entries) > 30, entries
    missing = [entry for entry in entries if not list(ROOT.glob(entry.rstrip("/").replace("<role>", "*")))]
    assert missing == [], missing


def test_every_top_level_entry_of_the_tree_is_named():
    entries, mentioned = layout_entries()
    named = {entry.split("/")[0] for entry in entries} | mentioned
    present = {path.name for path in ROOT.iterdir()} - UNNAMED
    # What the tree holds only while working (git ignores it), not part of the layout.
    ignored = {".venv", ".cache", ".ansible", ".artifacts", ".pytest_cache", ".ruff_cache", "dns-records",
               "__pycache__"}
    assert sorted(present - ignored - named) == []


def test_every_relative_link_of_the_documentation_reaches_a_file():
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *ROOT.glob("docs/*.md"), *ROOT.glob("roles/*/README.md"),
             *ROOT.glob("lab/roles/*/README.md")]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path = target.split("#")[0]
            if path and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []
