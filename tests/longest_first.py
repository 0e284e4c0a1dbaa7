"""conftest.LONGEST_FIRST from a durations run: the test files by the time their tests took (setup, call and
teardown summed), longest first.

    .venv/bin/python -m pytest -q --durations=0 | tee durations.txt     # the whole suite, as the README runs it
    .venv/bin/python tests/longest_first.py durations.txt              # prints the files and their seconds
    .venv/bin/python tests/longest_first.py durations.txt --write      # and rewrites LONGEST_FIRST in conftest.py

Files that took under --min seconds (default 30) are left to collection order. test_ray.py stays out of the list
(see conftest): the two Ray modules take turns, so they should not be handed out one after the other.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

CONFTEST = Path(__file__).resolve().with_name("conftest.py")
KEPT_AT_ITS_PLACE = {"test_ray.py"}
LINE = re.compile(r"^\s*([\d.]+)s (?:setup|call|teardown)\s+(?:tests/)?([\w./-]+\.py)::")


def file_seconds(text: str) -> dict[str, float]:
    seconds: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        match = LINE.match(line)
        if match:
            seconds[Path(match[2]).name] += float(match[1])
    return dict(seconds)


def as_tuple(names: list[str]) -> str:
    """The names as conftest writes them: a tuple over lines of at most 120 characters."""
    lines, line = [], "LONGEST_FIRST = ("
    for i, name in enumerate(names):
        item = f'"{name}"' + (", " if i < len(names) - 1 else ")")
        if len(line) + len(item.rstrip()) > 120:
            lines.append(line.rstrip())
            line = " " * len("LONGEST_FIRST = (")
        line += item
    return "\n".join([*lines, line])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("durations", type=Path, help="pytest's output with --durations=0")
    parser.add_argument("--min", type=float, default=30.0, help="seconds a file must take to be listed")
    parser.add_argument("--write", action="store_true", help="rewrite LONGEST_FIRST in conftest.py")
    args = parser.parse_args(argv)
    seconds = file_seconds(args.durations.read_text())
    if not seconds:
        print(f"{args.durations}: no --durations=0 lines", file=sys.stderr)
        return 3
    ranked = sorted(seconds, key=lambda name: -seconds[name])
    for name in ranked:
        print(f"{seconds[name]:8.1f} s  {name}")
    listed = [name for name in ranked if seconds[name] >= args.min and name not in KEPT_AT_ITS_PLACE]
    tuple_text = as_tuple(listed)
    print(tuple_text)
    if args.write:
        text = CONFTEST.read_text()
        new, count = re.subn(r"^LONGEST_FIRST = \(.*?\)\n", lambda _: tuple_text + "\n", text, count=1,
                             flags=re.S | re.M)
        if count != 1:
            print(f"{CONFTEST}: no LONGEST_FIRST tuple to replace", file=sys.stderr)
            return 3
        CONFTEST.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
