"""Where a run's files live: a local path (the default), a shared file-system path, or an
object-store URI (`s3://bucket/prefix`, and whatever else fsspec knows, e.g. `gs://`).

`storage_path` turns a location into a path object with pathlib's API: a `pathlib.Path` for a
local or shared path (behaviour unchanged: atomic renames, fsync) and a universal-pathlib `UPath`
over fsspec for a URI, so code reads `run_dir / "summary.json"` either way. Endpoint and
credentials come only from the standard environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...,
or an instance role), never from config files or logs.

Object stores have no rename and no fsync: a PUT of a whole object is atomic and durable when it
returns. So on a URI a file is written in one piece (`write_bytes`), and the replay store uses
its own commit protocol (distributed/replay/README.md).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from upath import UPath
    from zarr.storage import FsspecStore

# What storage_path returns: a pathlib.Path (local or shared file system) or an UPath (a URI)
StoragePath: TypeAlias = "Path | UPath"
# What a run's location may be given as: a path string or URI, a path object, or an UPath
Location: TypeAlias = "str | os.PathLike[str] | UPath"

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# s3fs caches directory listings; a reader polling a shard another process writes must not see a stale one
_NO_LISTING_CACHE: dict[str, dict[str, Any]] = {
    "s3": {"use_listings_cache": False},
    "s3a": {"use_listings_cache": False},
}


class StorageError(ValueError):
    """A storage location that cannot be used; the message names the location and the fix."""


def scheme(location: object) -> str | None:
    """'s3' for 's3://b/p' (or an UPath on S3); None for a local path."""
    protocol = getattr(location, "protocol", None)
    if isinstance(protocol, str) and protocol not in ("", "file", "local"):
        return protocol
    m = _SCHEME.match(str(location)) if isinstance(location, str) else None
    return m.group(1).lower() if m and m.group(1).lower() not in ("file", "local") else None


def is_remote(location: object) -> bool:
    """Whether `location` is an object-store (or other fsspec) URI rather than a file-system path."""
    return scheme(location) is not None


def storage_path(location: Location) -> StoragePath:
    """A path object for `location`: pathlib.Path (local, `~` expanded) or UPath (a URI).

    Raises StorageError for a scheme fsspec has no implementation for (one line naming it)."""
    if isinstance(location, Path) and not is_remote(location):
        return location
    proto = scheme(location)
    if proto is None:
        text = str(location)
        if text.startswith("file://"):
            text = text[len("file://") :]
        return Path(os.path.expanduser(text))
    from upath import UPath

    if isinstance(location, UPath):
        return location
    if not isinstance(location, str):
        raise StorageError(f"{location!r}: a '{proto}://' location must be a URI string or an UPath")
    import fsspec

    if proto not in fsspec.available_protocols():
        raise StorageError(
            f"{location!r}: no fsspec implementation for '{proto}://' (known: s3, gs, az, ...); "
            f"use a local path or an s3:// URI"
        )
    try:
        return UPath(location, **_NO_LISTING_CACHE.get(proto, {}))
    except ImportError as exc:  # e.g. gcsfs not installed for gs://
        raise StorageError(f"{location!r}: {exc}") from None


def local_path(path: StoragePath) -> Path:
    """`path` (from storage_path, not remote) as the pathlib.Path it is; StorageError for an object-store
    location, where a caller needs a file system."""
    if not isinstance(path, Path):
        raise StorageError(f"{path}: an object-store location where a local file-system path is needed")
    return path


def write_bytes(path: Location, data: bytes) -> None:
    """Replace the file at `path` with `data` so a reader sees the old content or the new, never a
    torn file: temp file + fsync + rename on a file system, one PUT on an object store."""
    where = storage_path(path)
    if is_remote(where):
        where.write_bytes(data)
        return
    path = local_path(where)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_text(path: Location, text: str) -> None:
    """Append to a text file. Object stores cannot append: the object is read and written back whole
    (metrics.jsonl grows by a row per call; fine at this size, and only one process appends)."""
    where = storage_path(path)
    if not is_remote(where):
        with open(local_path(where), "a") as f:
            f.write(text)
        return
    old = where.read_bytes() if where.exists() else b""
    where.write_bytes(old + text.encode())


@contextmanager
def local_staging(path: Location) -> Iterator[Path]:
    """`with local_staging(dest) as d:` a local directory to write into (tools that need a real file
    system: matplotlib, wandb, report writers); for a URI its files are uploaded to `dest` at the end.
    For a local `dest` it is `dest` itself."""
    dest = storage_path(path)
    if not is_remote(dest):
        dest = local_path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        yield dest
        return
    tmp = Path(tempfile.mkdtemp(prefix="latentfleet-stage-"))
    try:
        yield tmp
        upload_tree(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def upload_tree(local: Path, dest: Location) -> None:
    """Copy every file under the local directory `local` to `dest` (a URI), one object each."""
    dest = storage_path(dest)
    for p in sorted(Path(local).rglob("*")):
        if p.is_file():
            (dest / p.relative_to(local).as_posix()).write_bytes(p.read_bytes())


def check_writable(location: Location, key: str) -> None:
    """Refuse, before anything is written, a URI whose bucket does not exist or cannot be written:
    a probe object is written and deleted. Raises StorageError naming `key` and the fix. A local
    path needs no probe (it is created on first write)."""
    path = storage_path(location)
    if not is_remote(path):
        return
    bucket = str(location).split("://", 1)[1].split("/", 1)[0]
    probe = path / f".latentfleet-probe-{uuid.uuid4().hex[:12]}"
    try:
        probe.write_bytes(b"probe")
        probe.unlink()
    except FileNotFoundError:
        raise StorageError(
            f"{key}={location}: bucket '{bucket}' does not exist (or the endpoint in "
            f"AWS_ENDPOINT_URL does not serve it); create it first or choose another bucket"
        ) from None
    except PermissionError:
        raise StorageError(
            f"{key}={location}: cannot write to bucket '{bucket}' (access denied); set credentials "
            f"that may write there (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a role)"
        ) from None
    except OSError as exc:
        raise StorageError(
            f"{key}={location}: cannot write there ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); check the bucket, the "
            f"endpoint (AWS_ENDPOINT_URL) and the credentials"
        ) from None


def zarr_store(path: Location, *, read_only: bool = False) -> str | FsspecStore:
    """What to hand Zarr for the group at `path`: the path string for a local directory (Zarr's
    LocalStore, whose writes are temp file + rename), else Zarr's own FsspecStore over the URI."""
    path = storage_path(path)
    if not is_remote(path):
        return str(path)
    from zarr.storage import FsspecStore

    url = str(path)
    proto = scheme(url)
    options = dict(_NO_LISTING_CACHE[proto]) if proto in _NO_LISTING_CACHE else {}
    if proto in ("s3", "s3a"):  # s3fs asks an object's size (a HEAD) before each whole GET unless
        options["max_concurrency"] = 1  # ranged reads are off; a Zarr object is small and read whole
    return FsspecStore.from_url(url, storage_options=options, read_only=read_only)
