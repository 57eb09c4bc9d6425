"""What the Dockerfile's runtime stage says, read as data (for the layout and compose tests).

Only the instructions the image's layout depends on: ENV, USER, WORKDIR,
COPY of repository folders, the ``ln -s`` of RUN, VOLUME, ENTRYPOINT, CMD
and the HEALTHCHECK command. Continuation lines are joined first.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    name: str
    base: str
    env: dict[str, str] = field(default_factory=dict)
    user: str = "root"
    workdir: str = "/"
    copies: list[tuple[str, str]] = field(default_factory=list)  # (source, absolute target)
    links: list[tuple[str, str]] = field(default_factory=list)  # (target, link path)
    volumes: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _json_or_shell(text: str) -> list[str]:
    return json.loads(text) if text.startswith("[") else ["/bin/sh", "-c", text]


def stages(text: str | None = None) -> list[Stage]:
    text = DOCKERFILE.read_text() if text is None else text
    args: dict[str, str] = {}
    out: list[Stage] = []
    for word, rest in _instructions(text):
        if word == "ARG" and not out:
            name, _, default = rest.partition("=")
            args[name] = default
        elif word == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), parts[0])
            out.append(Stage(parts[-1] if "AS" in (p.upper() for p in parts) else "", base))
        elif word == "ENV":
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                out[-1].env[key] = value
        elif word == "USER":
            out[-1].user = rest
        elif word == "WORKDIR":
            out[-1].workdir = rest
        elif word == "COPY" and not rest.startswith("--from"):
            *sources, target = rest.split()
            base = target if target.startswith("/") else f"{out[-1].workdir}/{target}"
            for src in sources:
                out[-1].copies.append((src, base.rstrip("/").replace("/./", "/")))
        elif word == "RUN":
            out[-1].runs.append(rest)
            for m in re.finditer(r"ln -s (\S+) (\S+)", rest):
                out[-1].links.append((m.group(1), m.group(2)))
        elif word == "VOLUME":
            out[-1].volumes += _json_or_shell(rest) if rest.startswith("[") else rest.split()
        elif word == "ENTRYPOINT":
            out[-1].entrypoint = _json_or_shell(rest)
        elif word == "CMD":
            out[-1].cmd = _json_or_shell(rest)
        elif word == "HEALTHCHECK":
            _, _, command = rest.partition("CMD ")
            out[-1].healthcheck = _json_or_shell(command.strip())
    return out


def runtime_stage() -> Stage:
    return stages()[-1]
