"""Shared by the benchmark scripts: the machine line and section replacement in RESULTS.md."""
import datetime
import os
import platform

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "RESULTS.md")


def header(title: str, command: str) -> list:
    return [f"## {title}", "", f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}",
            f"- date: {datetime.date.today().isoformat()}", f"- command: `{command}`"]


def update(path: str, heading: str, section: str) -> None:
    """Replace the section that starts with ``heading`` in RESULTS.md (or append it)."""
    old = open(path).read() if os.path.isfile(path) else "# Benchmark results\n"
    parts = old.split("\n## ")
    kept = [parts[0]] + ["## " + p for p in parts[1:] if not ("## " + p).startswith(heading)]
    with open(path, "w") as fh:
        fh.write("\n".join(p.rstrip("\n") + "\n" for p in kept) + "\n" + section + "\n")
