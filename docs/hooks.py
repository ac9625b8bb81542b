"""mkdocs hook: the command-line reference is generated from hwnas's own parser at build time,
so it can never fall behind the code."""

from __future__ import annotations

import argparse
from typing import Any

MARKER = "<!-- cli-reference -->"


def _section(name: str, parser: argparse.ArgumentParser, summary: str) -> str:
    lines = [f"## `hwnas {name}`", "", summary, "", "```text", parser.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if MARKER not in markdown:
        return markdown
    import os

    from hwnas.cli.parser import build_parser

    os.environ.setdefault("COLUMNS", "100")  # stable wrapping of argparse's help
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in sub._choices_actions}  # each command's one-line help
    sections = [_section(name, p, helps.get(name, "")) for name, p in sub.choices.items()]
    return markdown.replace(MARKER, "\n".join(sections))
