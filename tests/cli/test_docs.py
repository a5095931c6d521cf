"""Docs that cannot drift: every relative link in README.md and docs/*.md resolves (the
file, and the heading an anchor names), every setting, env var, flag and TOML key the
docs name exists, and every setting is in the README's configuration table."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tidings.cli import build_parser
from tidings.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *ROOT.glob("docs/*.md"),
               *(p for p in ROOT.glob("deploy/**/*.md") if "node_modules" not in p.parts)])
SETTINGS = set(Settings.__struct_fields__)

# Environment variables that are not settings: each is read by the code named.
OTHER_ENV = {
    "TIDINGS_CONFIG",     # config.py: the TOML file
    "TIDINGS_PASSWORD",   # cli.py: user add
    "TIDINGS_TOKEN",      # cli_broker.py: publish
    "TIDINGS_URL",        # cli_broker.py: publish
    "TIDINGS_WORKER_OF",  # workers.py
    "TIDINGS_WS_PARSER",  # gateway/parser.py: "python" forces the plain-Python frame parser
    "TIDINGS_BIN",        # clients/js tests: the executable under test
    "TIDINGS_SCREENSHOTS",  # tests/browser: rewrite docs/img
    "TIDINGS_DEPLOY_CACHE",  # tests/deploy: where images and the Debian base are kept
    "TIDINGS_INSTANCES",  # deploy/pm2/ecosystem.config.js: how many nodes
    "TIDINGS_HTTP_PORT",  # deploy/compose.yaml: nginx's published port
    "TIDINGS_IMAGE",      # deploy/compose.yaml: the image to run
    "TIDINGS_BASE",       # deploy/compose.yaml: the base image to build on
}

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _prose(text: str) -> str:
    """``text`` without its fenced code blocks."""
    return _FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[`*_]|\[|\]\([^)]*\)", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in _prose(path.read_text()).splitlines():
        if line.startswith("#"):
            base = slug(line.lstrip("#"))
            name, n = base, 1
            while name in found:
                name, n = f"{base}-{n}", n + 1
            found.add(name)
    return found


def test_the_docs_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in DOCS}
    assert {"README.md", "docs/protocol.md", "docs/security.md"} <= names


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(doc):
    broken = []
    for target in _LINK.findall(_prose(doc.read_text())):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.name}")
    assert broken == []


def _all_flags() -> set[str]:
    flags: set[str] = set()

    def walk(parser) -> None:
        for action in parser._actions:
            flags.update(s for s in action.option_strings if s.startswith("--"))
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):  # subcommands (a flag's choices are a tuple)
                for sub in choices.values():
                    walk(sub)

    walk(build_parser())
    return flags


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_env_var_named_is_a_setting_or_a_known_variable(doc):
    named = set(re.findall(r"\bTIDINGS_[A-Z][A-Z0-9_]*[A-Z0-9]", doc.read_text()))
    unknown = {v for v in named
               if v not in OTHER_ENV and v.removeprefix("TIDINGS_").lower() not in SETTINGS}
    assert unknown == set()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_tidings_flag_named_exists(doc):
    flags = _all_flags()
    unknown = set()
    for line in doc.read_text().splitlines():
        # a `tidings` command (not a path such as /var/lib/tidings), or make's ARGS
        if not re.search(r"(?:^|[\s`/])tidings\s+[a-z]", line) \
                and "make serve ARGS=" not in line:
            continue
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", line):
            if flag not in flags:
                unknown.add(flag)
    assert unknown == set()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_toml_example_parses_and_names_only_settings(doc):
    for block in re.findall(r"^```toml\n(.*?)^```", doc.read_text(), re.S | re.M):
        keys = {k.replace("-", "_") for k in tomllib.loads(block)}
        assert keys <= SETTINGS, keys - SETTINGS


def test_the_readme_configuration_table_lists_exactly_the_settings():
    text = (ROOT / "README.md").read_text()
    table = text.split("## Configuration", 1)[1].split("\n\n", 2)[2]
    rows = re.findall(r"^\| `(\w+)` \| `(TIDINGS_\w+)`[^|]*\| `(--[\w-]+)`", table, re.M)
    assert {name for name, _, _ in rows} == SETTINGS
    for name, env, flag in rows:
        assert env == "TIDINGS_" + name.upper()
        assert flag == "--" + name.replace("_", "-")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_setting_named_in_a_docs_table_exists(doc):
    """A backticked snake_case name in the first cell of a table under a heading that
    names settings is a setting."""
    unknown = set()
    for section in re.split(r"^#+ ", doc.read_text(), flags=re.M):
        heading = section.split("\n", 1)[0].lower()
        if "setting" not in heading and "configuration" not in heading:
            continue
        for name in re.findall(r"^\| `([a-z][a-z0-9_]*)` \|", section, re.M):
            if name not in SETTINGS:
                unknown.add(name)
    assert unknown == set()


def test_the_checks_catch_a_broken_link_an_unknown_flag_and_an_unknown_variable(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("# Title\n\n[a](x.md#title) [b](missing.md) [c](#nowhere)\n")
    with pytest.raises(AssertionError, match=r"missing\.md: no such file"):
        test_every_relative_link_resolves(doc)
    doc.write_text("tidings serve --prot 1\nTIDINGS_PROT=1\n")
    with pytest.raises(AssertionError, match="--prot"):
        test_every_tidings_flag_named_exists(doc)
    with pytest.raises(AssertionError, match="TIDINGS_PROT"):
        test_every_env_var_named_is_a_setting_or_a_known_variable(doc)
