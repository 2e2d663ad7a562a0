"""Per-peer virtualenvs under a cache directory, built once and reused.

Peers are never installed into the project's environment: each gets ``<cache>/<name>``,
created with the same interpreter that runs the harness. A marker file records the exact
requirement list; when it changes the environment is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import venv
from pathlib import Path

log = logging.getLogger("bench.envs")

MARKER = "bench-requirements.json"


def _python(env_dir: Path) -> Path:
    return env_dir / "bin" / "python"


def _digest(requirements: list[str]) -> str:
    text = json.dumps(
        {"python": sys.version_info[:2], "requirements": sorted(requirements)}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()


def ensure_env(cache: Path, name: str, requirements: list[str], timeout: float = 900) -> Path:
    """Return the Python of the virtualenv ``cache/name`` holding ``requirements``.

    Builds (or rebuilds) it when missing or when the requirement list changed.
    """
    env_dir = cache / name
    marker = env_dir / MARKER
    digest = _digest(requirements)
    if marker.exists() and _python(env_dir).exists():
        try:
            if json.loads(marker.read_text()).get("digest") == digest:
                return _python(env_dir)
        except (OSError, ValueError):
            pass
    log.info("building virtualenv %s: %s", env_dir, " ".join(requirements))
    if env_dir.exists():
        shutil.rmtree(env_dir)
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    subprocess.run(
        [str(_python(env_dir)), "-m", "pip", "install", "--quiet", *requirements],
        check=True,
        timeout=timeout,
        stdout=sys.stderr,
    )
    marker.write_text(json.dumps({"digest": digest, "requirements": requirements}))
    return _python(env_dir)


def installed_versions(python: Path, distributions: list[str]) -> dict[str, str]:
    """Versions of ``distributions`` as installed for ``python`` (missing ones are left out)."""
    code = (
        "import json, sys\n"
        "from importlib import metadata\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        out[name] = metadata.version(name)\n"
        "    except metadata.PackageNotFoundError:\n"
        "        pass\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [str(python), "-c", code, *distributions],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    versions: dict[str, str] = json.loads(done.stdout)
    return versions
