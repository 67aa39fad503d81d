"""MANIFEST.sha256: one `sha256sum -c` line per file of the bundle, written last.

With it a bundle attached to a dossier can be checked unaltered:
`cd evidence && sha256sum -c MANIFEST.sha256`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

MANIFEST_NAME = "MANIFEST.sha256"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_files(bundle: Path) -> list[Path]:
    """Every regular file of the bundle but the manifest, as sorted relative POSIX paths."""
    return sorted(
        (p.relative_to(bundle) for p in bundle.rglob("*") if p.is_file() and p.name != MANIFEST_NAME),
        key=lambda p: p.as_posix(),
    )


def write_manifest(bundle: Path) -> Path:
    lines = []
    for rel in bundle_files(bundle):
        if "\n" in rel.as_posix() or "\\" in rel.as_posix():
            # sha256sum escapes such names; we never produce them, so refuse rather than mis-list.
            raise ValueError(f"cannot list {rel!r} in {MANIFEST_NAME}")
        lines.append(f"{sha256_file(bundle / rel)}  {rel.as_posix()}\n")
    path = bundle / MANIFEST_NAME
    path.write_text("".join(lines), encoding="utf-8")
    return path


@dataclass(frozen=True)
class ManifestCheck:
    changed: tuple[str, ...]  # listed, but the content differs
    missing: tuple[str, ...]  # listed, but gone
    unlisted: tuple[str, ...]  # present, but not listed (added after the manifest)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.unlisted)


def verify_manifest(bundle: Path) -> ManifestCheck:
    listed: dict[str, str] = {}
    for line in (bundle / MANIFEST_NAME).read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    present = {p.as_posix() for p in bundle_files(bundle)}
    return ManifestCheck(
        changed=tuple(sorted(n for n, d in listed.items() if n in present and sha256_file(bundle / n) != d)),
        missing=tuple(sorted(n for n in listed if n not in present)),
        unlisted=tuple(sorted(present - listed.keys())),
    )
