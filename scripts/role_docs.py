#!/usr/bin/env python3
"""Write each role's README.md from its meta/argument_specs.yml.

    .venv/bin/python scripts/role_docs.py           # write the READMEs that changed
    .venv/bin/python scripts/role_docs.py --check   # exit 1 naming each stale README (make lint)

A role's README is a hand-written opening, kept as it is, then a marker line, then the
reference generated from the spec: the entry point's description and a table of its
inputs (name, type, default, what it does). Only the part below the marker is written.
A README without the marker gets the spec's short description as its opening.
"""

import argparse
import json
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
MARKER = ("<!-- Below: generated from meta/argument_specs.yml by scripts/role_docs.py"
          " (make lint fails when it is stale). Edit the spec, then run the script. -->")


def text(value):
    """A spec's description (a string or a list of paragraphs): one Markdown paragraph
    per item, whitespace folded (cell() makes it one table cell)."""
    if value is None:
        return ""
    items = value if isinstance(value, list) else [value]
    return "\n\n".join(" ".join(str(item).split()) for item in items)


def cell(value):
    return text(value).replace("\n\n", " ").replace("|", "\\|")


def shown(default):
    """The default as it reads in YAML, in one table cell."""
    if isinstance(default, str):
        rendered = json.dumps(default) if default == "" or default != default.strip() else default
    else:
        rendered = json.dumps(default)
    return "`" + rendered.replace("|", "\\|").replace("`", "'") + "`"


def kind(option):
    name = option.get("type", "str")
    if name == "list" and option.get("elements"):
        name = f"list of {option['elements']}"
    return name


def option_rows(options, prefix=""):
    rows = []
    for name, option in options.items():
        default = "(required)" if option.get("required") else shown(option["default"]) if "default" in option else ""
        meaning = cell(option.get("description"))
        if option.get("choices"):
            meaning += " One of: " + ", ".join(f"`{choice}`" for choice in option["choices"]) + "."
        if option.get("no_log"):
            meaning += " Secret: never printed."
        rows.append(f"| `{prefix}{name}` | {kind(option)} | {default} | {meaning} |")
        if option.get("options"):
            rows += option_rows(option["options"], prefix=f"{prefix}{name}[].")
    return rows


def reference(specs):
    out = []
    for entry, spec in specs.items():
        heading = "Inputs" if entry == "main" else f"Inputs of the entry point `{entry}`"
        out += [f"## {heading}", ""]
        if spec.get("description"):
            out += [text(spec["description"]), ""]
        options = spec.get("options") or {}
        if options:
            out += ["| variable | type | default | what it does |", "|---|---|---|---|", *option_rows(options), ""]
        else:
            out += ["No inputs.", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def rendered(role_dir):
    specs = yaml.safe_load((role_dir / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    readme = role_dir / "README.md"
    if readme.exists() and MARKER in readme.read_text():
        opening = readme.read_text().split(MARKER, 1)[0].rstrip("\n")
    else:
        main = specs.get("main", next(iter(specs.values())))
        opening = f"# Role `{role_dir.name}`\n\n{text(main.get('short_description'))}."
    return f"{opening}\n\n{MARKER}\n\n{reference(specs)}"


def roles(root):
    # The production roles and the lab's own.
    patterns = ("roles/*/meta/argument_specs.yml", "lab/roles/*/meta/argument_specs.yml")
    return sorted(path.parents[1] for pattern in patterns for path in root.glob(pattern))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a README is stale")
    parser.add_argument("--root", type=pathlib.Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    stale = []
    for role_dir in roles(args.root):
        readme = role_dir / "README.md"
        want = rendered(role_dir)
        if readme.exists() and readme.read_text() == want:
            continue
        stale.append(readme.relative_to(args.root))
        if not args.check:
            readme.write_text(want)
    if args.check and stale:
        print("stale role READMEs (run .venv/bin/python scripts/role_docs.py): "
              + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
