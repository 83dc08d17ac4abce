"""Start-up time of the command line: each command as a whole process, median of several runs.

.venv/bin/python bench/startup.py [--runs 7]

Goals (issue 14): --help, check and schema under 0.3 s; levels under 0.5 s plus the round
trip. Also prints which heavy libraries each command loaded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.profiling import profile_if_asked

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("sqlalchemy", "telegram", "slack_sdk", "matplotlib", "aiohttp", "alembic", "numpy")
PROBE = (
    "import sys, runpy; sys.argv = ['gexbot', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('gexbot', run_name='__main__')\n"
    "except SystemExit:\n    pass\n"
    f"print('LOADED', sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})),"
    " file=sys.stderr)\n"
)


def _time(args: list[str], env: dict[str, str], runs: int) -> tuple[float, str]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "gexbot", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        times.append(time.perf_counter() - t0)
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    loaded = next(
        (line[7:] for line in probe.stderr.splitlines() if line.startswith("LOADED")), "?"
    )
    return statistics.median(times), loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEXBOT_")}
    sim = subprocess.Popen(
        [sys.executable, "-m", "gexbot", "sim-server", "--port", "0"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sim.stdout is not None
    url = sim.stdout.readline().split(" on ")[1].split("/v2")[0]
    try:
        bare = statistics.median(_timed([sys.executable, "-c", "pass"], env) for _ in range(runs))
        print(f"python -c pass: {bare:.3f} s (the interpreter alone)")
        levels_env = {**env, "GEXBOT_API_URL": url, "GEXBOT_API_KEY": "demo"}
        for args, goal, cmd_env in (
            (["--help"], 0.3, env),
            (["check"], 0.3, env),
            (["schema"], 0.3, env),
            (["levels", "BTC"], 0.5, levels_env),
        ):
            median, loaded = _time(args, cmd_env, runs)
            print(f"gexbot {' '.join(args):<11} {median:.3f} s (goal {goal:g} s)  heavy: {loaded}")
    finally:
        sim.terminate()
        sim.wait()


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, capture_output=True, check=False)
    return time.perf_counter() - t0


if __name__ == "__main__":
    with profile_if_asked():
        main()
