"""The environment a run was computed under: every installed distribution, and the lock file it matches.

Recorded with each run so that `cirkit diff` can say "computed under a different environment" and name the
packages that differ. The lock files live in a source checkout (``requirements/*.lock``); an installed wheel
has none, and then only the installed set is recorded.
"""

from __future__ import annotations

import functools
import hashlib
import re
from importlib import metadata
from pathlib import Path

__all__ = ["environment", "environment_differences", "installed", "read_lock"]

_LOCKS = Path(__file__).resolve().parents[2] / "requirements"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.M)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.lru_cache(maxsize=1)
def installed() -> dict[str, str]:
    """Canonical distribution name -> installed version, for everything importable in this interpreter."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(_canonical(name), dist.version)
    return dict(sorted(found.items()))


def read_lock(path: Path) -> dict[str, str]:
    """The pins (name -> version) of a pip-style lock file."""
    return {_canonical(n): v for n, v in _PIN.findall(path.read_text(encoding="utf-8"))}


@functools.lru_cache(maxsize=1)
def environment() -> dict:
    """``digest`` of the installed set; the lock files found beside the source with their digests and the
    installed packages that disagree with each (``matches`` when none do)."""
    packages = installed()
    text = "\n".join(f"{k}=={v}" for k, v in packages.items())
    out: dict = {"digest": hashlib.sha256(text.encode()).hexdigest(), "packages": packages, "locks": {}}
    for lock in sorted(_LOCKS.glob("*.lock")) if _LOCKS.is_dir() else []:
        pins = read_lock(lock)
        differs = sorted(n for n, v in pins.items() if packages.get(n, "").split("+")[0] != v.split("+")[0])
        out["locks"][lock.name] = {"digest": hashlib.sha256(lock.read_bytes()).hexdigest(), "matches": not differs,
                                   "differs": differs[:20]}
    return out


def environment_differences(a: dict | None, b: dict | None) -> list[str]:
    """Human-readable differences between two recorded environments ([] when the same or unknown)."""
    if not a or not b or a.get("digest") == b.get("digest"):
        return []
    pa, pb = a.get("packages", {}), b.get("packages", {})
    changes = [f"{n} {pa.get(n, 'absent')} -> {pb.get(n, 'absent')}" for n in sorted(set(pa) | set(pb))
               if pa.get(n) != pb.get(n)]
    return changes or ["installed packages differ"]


def lock_summary(env: dict | None) -> str:
    """One line for tables: the lock files the run's environment matched (with their digests), else the digest
    of the installed set."""
    if not env:
        return "not recorded"
    matched = [f"{name} {info['digest'][:12]}" for name, info in sorted(env.get("locks", {}).items())
               if info.get("matches")]
    return ", ".join(matched) if matched else f"no lock matched; installed set {str(env.get('digest', ''))[:12]}"
