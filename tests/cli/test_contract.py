"""The command line is a contract (DESIGN.md): commands and flags may be added, never renamed or
removed. This is the tree as it stood when cli.py became a package of command groups."""

from __future__ import annotations

import subprocess
import sys

from typer.main import get_command

from shelfwise.cli import app, main, run

CONTRACT = {
    "audiences build": [
        "--category",
        "--days",
        "--horizon-days",
        "--json",
        "--min-size",
        "--model",
        "--name",
        "--no-lift",
        "--product",
        "--replace",
        "--rule",
        "--size",
        "--spec",
        "--workdir",
        "-w",
    ],
    "audiences export": ["--json", "--name", "--out", "--pseudonyms", "--workdir", "-w"],
    "audiences list": ["--json", "--workdir", "-w"],
    "audit": ["--json", "--limit", "--workdir", "-w"],
    "catalog": ["--json", "--workdir", "-w"],
    "convert": ["--format", "--json", "--out", "--src"],
    "demo": [
        "--end",
        "--events",
        "--json",
        "--no-train",
        "--products",
        "--seed",
        "--train",
        "--users",
        "--workdir",
        "-w",
    ],
    "evaluate": ["--json", "--models", "--sampled", "--version", "--workdir", "-w"],
    "events absorb": ["--json", "--redis-url", "--workdir", "-w"],
    "experiments report": ["--experiment", "--json", "--workdir", "-w"],
    "experiments set": ["--file", "--workdir", "-w"],
    "export": ["--out", "--table", "--workdir", "-w"],
    "ingest": [
        "--append",
        "--data",
        "--engine",
        "--json",
        "--map",
        "--spark-master",
        "--spark-remote",
        "--warehouse",
        "--workdir",
        "-d",
        "-w",
    ],
    "insights demand": ["--as-of", "--horizon-weeks", "--level", "--out", "--workdir", "-w"],
    "insights replenishment": ["--as-of", "--out", "--review-days", "--service-level", "--workdir", "-w"],
    "lineage": ["--json", "--workdir", "-w"],
    "models approve": ["--version", "--workdir", "-w"],
    "models gates": ["--json", "--version", "--workdir", "-w"],
    "models list": ["--json", "--workdir", "-w"],
    "models promote": ["--json", "--version", "--workdir", "-w"],
    "models rollback": ["--workdir", "-w"],
    "privacy consent": ["--json", "--marketing", "--personalization", "--user", "--workdir", "-w"],
    "privacy erase": ["--json", "--redis-url", "--user", "--workdir", "-w"],
    "privacy export": ["--json", "--out", "--redis-url", "--user", "--workdir", "-w"],
    "quarantine export": ["--out", "--reason", "--table", "--workdir", "-w"],
    "quarantine list": ["--json", "--limit", "--reason", "--status", "--table", "--workdir", "-w"],
    "quarantine reprocess": ["--file", "--json", "--table", "--workdir", "-w"],
    "recommend": [
        "--all-users",
        "--context",
        "--engine",
        "--explain",
        "--k",
        "--model",
        "--no-explain",
        "--no-rules",
        "--out",
        "--rules",
        "--spark-master",
        "--spark-remote",
        "--users",
        "--workdir",
        "-w",
    ],
    "report audiences": ["--json", "--workdir", "-w"],
    "report ask": ["--json", "--questions", "--workdir", "-w"],
    "report customers": ["--as-of", "--horizon-days", "--json", "--workdir", "-w"],
    "report demand": [
        "--as-of",
        "--horizon-weeks",
        "--json",
        "--level",
        "--review-days",
        "--service-level",
        "--workdir",
        "-w",
    ],
    "report governance": ["--json", "--workdir", "-w"],
    "report search": ["--json", "--workdir", "-w"],
    "retention enforce": ["--json", "--workdir", "-w"],
    "rules set": ["--file", "--json", "--workdir", "-w"],
    "rules show": ["--workdir", "-w"],
    "rules synonyms": ["--file", "--json", "--workdir", "-w"],
    "search": ["--candidates", "--k", "--no-rules", "--out", "--queries", "--rules", "--workdir", "-w"],
    "serve": [
        "--absorb-seconds",
        "--drain-seconds",
        "--host",
        "--max-body-bytes",
        "--max-events",
        "--max-k",
        "--no-personalization",
        "--port",
        "--redis-url",
        "--reload-seconds",
        "--search-budget-ms",
        "--search-max-wait-ms",
        "--search-queue",
        "--workdir",
        "--workers",
        "-w",
    ],
    "train": [
        "--append",
        "--cross-encoder-seconds",
        "--data",
        "--finetune-seconds",
        "--json",
        "--map",
        "--models",
        "--no-fusion",
        "--refit-seconds",
        "--sasrec-seconds",
        "--seed",
        "--split",
        "--tune-seconds",
        "--tune-trials",
        "--workdir",
        "-d",
        "-w",
    ],
    "users add": ["--json", "--name", "--role", "--workdir", "-w"],
    "users list": ["--json", "--workdir", "-w"],
}


def commands() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}

    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        else:
            out[" ".join(path)] = {f for p in cmd.params for f in (*p.opts, *p.secondary_opts)}

    walk(get_command(app), [])
    return out


def test_every_command_and_flag_of_the_contract_is_still_there():
    have = commands()
    missing = {c: sorted(set(flags) - have.get(c, set())) for c, flags in CONTRACT.items()}
    assert not {c: f for c, f in missing.items() if f or c not in have}


def test_the_entry_points_survive_the_split():
    assert callable(run) and main(["--help"]) == 0
    proc = subprocess.run(
        [sys.executable, "-m", "shelfwise.cli", "models", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "promote" in proc.stdout
