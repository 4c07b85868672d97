"""Timing helpers: alternating rounds, median/min/max, and a check that each run really worked."""

from __future__ import annotations

import compileall
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def compile_package() -> None:
    """Write the package's .pyc files before anything is timed, as `pip install` does for a user.

    The warm-up runs cannot be relied on for that: with PYTHONDONTWRITEBYTECODE set (as in some CI and
    sandbox environments) Python never writes them, and every `agentsync` run then compiles ~70 modules
    from source — about 65 ms measured on `results`, a cost no installed copy has. Existing .pyc files are
    still read with that variable set."""
    import agentsync_fleet

    compileall.compile_dir(Path(agentsync_fleet.__file__).parent, quiet=1)


class BenchRunFailed(RuntimeError):
    pass


@dataclass
class Series:
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def to_dict(self) -> dict:
        return {"median": round(self.median, 4), "min": round(min(self.samples), 4),
                "max": round(max(self.samples), 4), "samples": [round(s, 4) for s in self.samples]}


def run_ok(argv: list[str], check: Callable[[subprocess.CompletedProcess], bool] | None = None,
           **kwargs) -> subprocess.CompletedProcess:
    """Run a command; a failed or wrong run is an error, never a fast figure."""
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if result.returncode != 0 or (check is not None and not check(result)):
        raise BenchRunFailed(f"{' '.join(argv)[:200]} failed ({result.returncode}):\n"
                             f"{result.stdout[-800:]}\n{result.stderr[-800:]}")
    return result


def alternate(commands: dict[str, Callable[[], object]], rounds: int,
              before_each: Callable[[str], None] | None = None) -> dict[str, Series]:
    """Round-robin the commands `rounds` times (after one untimed warm-up each) and time every run."""
    series = {name: Series() for name in commands}
    for name, command in commands.items():
        if before_each:
            before_each(name)
        command()  # warm-up: caches, first sshd fork, .pyc files
    for _ in range(rounds):
        for name, command in commands.items():
            if before_each:
                before_each(name)
            start = time.perf_counter()
            command()
            series[name].samples.append(time.perf_counter() - start)
            time.sleep(0.05)  # let the previous run's sshd children exit
    return series
