"""What verifying and downloading share across datasets: the report and the default directory.

Kept free of pandas and of the adapters, so that every adapter can use it and the CLI can
build its parsers from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DATA_DIR_ENV", "VerificationReport", "default_data_dir"]

#: Environment variable naming the default data directory.
DATA_DIR_ENV = "FEATUREKIT_DATA_DIR"


def default_data_dir() -> Path:
    """``$FEATUREKIT_DATA_DIR``, else ``~/featurekit_data``.

    Returns
    -------
    Path
        The directory downloads go to when none is given (user directory expanded).
    """
    return Path(os.environ.get(DATA_DIR_ENV) or Path.home() / "featurekit_data").expanduser()


@dataclass
class VerificationReport:
    """Outcome of :func:`~featurekit.datasets.verify_dataset`: one line per check.

    Attributes
    ----------
    name : str
        Dataset checked.
    root : Path
        Dataset root found.
    checks : list of (str, bool, str)
        ``(what, passed, detail)`` per check.
    """

    name: str
    root: Path
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return all(passed for _, passed, _ in self.checks)

    @property
    def problems(self) -> list[str]:
        """``what: detail`` of each failed check."""
        return [f"{what}: {detail}" for what, passed, detail in self.checks if not passed]

    def add(self, what: str, passed: bool, detail: str) -> None:
        """Record one check.

        Parameters
        ----------
        what : str
            What was checked (``"archive"``, ``"audio files"``, ...).
        passed : bool
            Whether it agrees with the complete dataset.
        detail : str
            What was found, for the report line.
        """
        self.checks.append((what, passed, detail))

    def __str__(self) -> str:
        lines = [f"{self.name} at {self.root}"]
        lines += [f"  {'ok  ' if passed else 'FAIL'} {what}: {detail}"
                  for what, passed, detail in self.checks]
        lines.append(f"{self.name}: {'complete and consistent' if self.ok else 'PROBLEMS FOUND'}")
        return "\n".join(lines)
