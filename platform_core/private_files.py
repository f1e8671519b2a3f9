"""Files only the owner may read: generated keys, logins, certificates (0600, in 0700 directories)."""

from __future__ import annotations

from pathlib import Path


def write_private(path: Path, data: bytes | str) -> None:
    """Create with mode 0600 before writing, so the secret is never readable by others, even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
