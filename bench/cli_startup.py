"""CLI start-up: wall time of a ``safehold`` command from exec to exit, as a user at a terminal sees it.

Every command is a fresh process, so what dominates is importing Python modules, not the work itself. Measured,
N runs each after one warm-up run (so the page cache holds the files), in a temporary ``SAFEHOLD_HOME`` created
by ``safehold db upgrade`` (embedded SQLite):

- ``--help`` and ``--version``: no store is opened; the target is 0.3 s.
- ``apikey list`` and ``bank list``: commands that read the database and nothing else.
- the floor in the same run: ``python -c pass`` (the interpreter alone) and ``python -c "import typer"`` (the
  CLI framework every command needs), which no command can beat.
- ``--baseline SRC``: the same commands from another copy of the package (``python -m safehold`` with ``SRC``
  first on the path, e.g. a ``git worktree`` of an earlier commit), each run alternating with the current one so
  that both see the same load on a shared machine.

Median, p90 and min per command, in seconds. Usage:
``.venv/bin/python bench/cli_startup.py [--runs 20] [--baseline /tmp/base/src] [--out bench/results/cli_startup.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_info import machine

REPO = Path(__file__).resolve().parents[1]

COMMANDS = {
    "--help": ["--help"],
    "--version": ["--version"],
    "apikey list": ["apikey", "list"],
    "bank list": ["bank", "list"],
}


def safehold_command() -> list[str]:
    """The installed ``safehold`` script next to this interpreter (what ``make`` and the docs run), else
    ``python -m safehold``."""
    script = Path(sys.executable).with_name("safehold")
    return [str(script)] if script.exists() else [sys.executable, "-m", "safehold"]


def wall(argv: list[str], env: dict) -> float:
    """Seconds from start to exit of one process; a failing command stops the benchmark."""
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def summary(times: list[float]) -> dict:
    ordered = sorted(times)
    return {
        "runs": len(ordered),
        "median_s": round(statistics.median(ordered), 3),
        "p90_s": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3),
        "min_s": round(ordered[0], 3),
    }


def measure(argv: list[str], env: dict, runs: int) -> dict:
    wall(argv, env)  # warm-up
    return summary([wall(argv, env) for _ in range(runs)])


def measure_pair(argv: list[str], env: dict, base_argv: list[str], base_env: dict, runs: int) -> tuple[dict, dict]:
    """``argv`` and the baseline's, alternating run by run."""
    wall(argv, env)
    wall(base_argv, base_env)
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        times[0].append(wall(argv, env))
        times[1].append(wall(base_argv, base_env))
    return summary(times[0]), summary(times[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--baseline", type=Path, help="A src/ folder holding another copy of the safehold package.")
    p.add_argument("--out", type=Path, default=REPO / "bench/results/cli_startup.json")
    args = p.parse_args()
    safehold = safehold_command()
    with tempfile.TemporaryDirectory(prefix="safehold-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if k != "SAFEHOLD_DATABASE_URL"}
        env["SAFEHOLD_HOME"] = str(Path(tmp) / "home")
        upgrade = wall([*safehold, "db", "upgrade"], env)
        result = {
            "benchmark": "cli_startup",
            "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            "machine": machine(),
            "command": " ".join(Path(a).name if i == 0 else a for i, a in enumerate(safehold)),
            "db_upgrade_first_s": round(upgrade, 3),
            "floor": {
                "python -c pass": measure([sys.executable, "-c", "pass"], env, args.runs),
                "import typer": measure([sys.executable, "-c", "import typer"], env, args.runs),
            },
        }
        if args.baseline is None:
            result["commands"] = {name: measure([*safehold, *argv], env, args.runs) for name, argv in COMMANDS.items()}
        else:
            base = [sys.executable, "-m", "safehold"]
            base_env = {**env, "PYTHONPATH": str(args.baseline.resolve())}
            result["baseline"] = str(args.baseline)
            result["commands"], result["baseline_commands"] = {}, {}
            for name, argv in COMMANDS.items():
                result["commands"][name], result["baseline_commands"][name] = measure_pair(
                    [*safehold, *argv], env, [*base, *argv], base_env, args.runs
                )
    result["machine"]["load_end"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
