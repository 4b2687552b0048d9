"""The file that makes a directory a sharded store: ``shards.json``, its format and its
atomic rewrite (the registry of shards that reads and changes it is ``sharded.py``).

Layout::

    <root>/shards.json          format, version, the shards' common layout (extractor,
                                ``layout`` as ``layout.py`` declares it, global dimension;
                                also ``descriptors`` and ``frame_width`` for older readers)
                                and per shard: name, image and feature counts, CRC-32 of
                                its manifest; and its own CRC-32
    <root>/shards/<name>/       one store directory each (``single.py``)
    <root>/.lock                the writer lock (``lock.py``)
"""

from __future__ import annotations

import json
import os
import re
import secrets
import zlib
from pathlib import Path
from typing import Any

from .._io import atomic_write_json
from ..errors import FormatError, InvalidInputError

__all__ = [
    "SHARDED_FORMAT",
    "SHARDED_VERSION",
    "SHARDS_FILE",
    "empty_listing",
    "listing_checksum",
    "new_shard_name",
    "read_listing",
    "registered_in",
    "shard_dirs",
    "shard_manifest_crc",
    "shard_path",
    "write_listing",
]

#: The file that makes a directory a sharded store.
SHARDS_FILE = "shards.json"
SHARDED_FORMAT = "ilias-rerank-sharded-store"
#: Version 2: an id is registered in one shard at most, a registered shard is never
#: written again. Version 1 lists (an earlier release) are read as they are (``store
#: check`` finds what they may hold twice, ``store repair`` fixes it); the next
#: registration writes version 2.
SHARDED_VERSION = 2
READABLE_VERSIONS = (1, 2)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ENTRY = {"name": str, "images": int, "features": int, "manifest_crc": int}


def shard_path(root: str | os.PathLike, name: str) -> Path:
    """The directory of shard ``name`` of the sharded store at ``root``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"shard name: expected letters, digits, '.', '_' or '-' (at most 128), got {name!r}"
        )
    return Path(root) / "shards" / name


def new_shard_name(prefix: str) -> str:
    """A fresh shard name: ``prefix`` and 16 random hex digits."""
    return f"{prefix}-{secrets.token_hex(8)}"


def listing_checksum(m: dict) -> int:
    """The CRC-32 ``shards.json`` records of itself (over every other key)."""
    body = {k: v for k, v in m.items() if k != "checksum"}
    return zlib.crc32(json.dumps(body, sort_keys=True).encode())


def shard_manifest_crc(shard: Path) -> int:
    """The CRC-32 of a shard's ``manifest.json`` bytes (what its listing entry records)."""
    try:
        return zlib.crc32((shard / "manifest.json").read_bytes())
    except FileNotFoundError as exc:
        raise FormatError(f"shard {shard.name}: no committed manifest ({exc})") from None


def read_listing(root: Path) -> dict:
    """``root/shards.json``, checked (format, version, checksum, entries)."""
    path = root / SHARDS_FILE
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"{path}: unreadable shard list ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != SHARDED_FORMAT:
        raise FormatError(f"{path}: expected format {SHARDED_FORMAT!r}")
    version = m.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise FormatError(
            f"{path}: expected version {' or '.join(map(str, READABLE_VERSIONS))}, "
            f"got {version!r} (written by another release of ilias-rerank)"
        )
    if not isinstance(m.get("shards"), list) or m.get("checksum") != listing_checksum(m):
        raise FormatError(f"{path}: checksum mismatch (corrupt shard list)")
    layout = m.get("layout")
    if layout is not None and not (
        isinstance(layout, dict)
        and isinstance(layout.get("descriptors"), dict)
        and isinstance(layout["descriptors"].get("dtype"), str)
        and type(layout["descriptors"].get("dim")) is int
    ):
        raise FormatError(
            f"{path}: expected a layout with descriptors dtype and dim, got {layout!r}"
        )
    names = set()
    for k, entry in enumerate(m["shards"]):
        if not isinstance(entry, dict) or any(
            type(entry.get(key)) is not kind for key, kind in _ENTRY.items()
        ):
            raise FormatError(
                f"{path}: shard entry {k}: expected name, images, features and manifest_crc, "
                f"got {entry!r}"
            )
        if not _NAME.match(entry["name"]) or entry["name"] in names:
            raise FormatError(f"{path}: shard entry {k}: bad or repeated name {entry['name']!r}")
        names.add(entry["name"])
    return m


def empty_listing() -> dict:
    return {"format": SHARDED_FORMAT, "version": SHARDED_VERSION, "layout": None, "shards": []}


def listing_layout(key: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``layout`` entry of ``shards.json`` for a store key (``single.store_layout_key``):
    the key, plus ``descriptors`` and ``frame_width`` as older readers read them."""
    if key is None:
        return None
    layout = key["layout"]
    return {
        **key,
        "descriptors": {
            "dtype": layout["descriptor_dtype"] if layout else "uint8",
            "dim": layout["descriptor_dim"] if layout else 0,
        },
        "frame_width": layout["frame_width"] if layout else 0,
    }


def write_listing(root: Path, m: dict) -> dict:
    """Rewrite ``shards.json`` atomically (the caller holds the root's writer lock)."""
    m["version"] = SHARDED_VERSION
    m["shards"] = sorted(m["shards"], key=lambda e: e["name"])
    m["checksum"] = listing_checksum(m)
    atomic_write_json(root / SHARDS_FILE, m, indent=1)
    return m


def shard_dirs(root: str | os.PathLike) -> list[str]:
    """Names of the shard directories under ``root/shards`` (registered or not)."""
    folder = Path(root) / "shards"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and _NAME.match(p.name))


def registered_in(path: Path) -> Path | None:
    """The sharded store whose ``shards.json`` lists the directory ``path`` as a shard."""
    if path.parent.name != "shards":
        return None
    listing = path.parent.parent / SHARDS_FILE
    try:
        shards = json.loads(listing.read_text(encoding="utf-8")).get("shards")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as exc:
        raise FormatError(f"{listing}: unreadable shard list ({exc})") from None
    if isinstance(shards, list) and any(
        isinstance(e, dict) and e.get("name") == path.name for e in shards
    ):
        return path.parent.parent
    return None
