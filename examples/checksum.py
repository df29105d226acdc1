"""Example I/O- and CPU-heavy job: SHA-256 of every file under a folder that matches a pattern."""
from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_files(path: str, pattern: str = "**/*") -> dict:
    root = Path(path)
    if not root.is_dir():
        raise NotADirectoryError(f"{path} is not a folder")
    files = sorted(p for p in root.glob(pattern) if p.is_file())
    return {
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "sha256": {str(p.relative_to(root)): file_digest(p) for p in files},
    }


def file_sha256(path: str) -> dict:
    """One file's digest: the job that `batchrun map` runs once per file of a folder (see README, Batches)."""
    file = Path(path)
    return {"path": path, "bytes": file.stat().st_size, "sha256": file_digest(file)}
