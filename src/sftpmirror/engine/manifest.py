"""The manifest: what sftpmirror last deployed (path → size, remote mtime, SHA-256), kept with
the remote tree so a shell-less server's files are known by content without downloading them.

A remote file whose size and mtime still match its entry is known by the entry's hash; one that
drifted (changed behind our back) or has no entry is unknown, and a push replaces it. A
missing, corrupt or foreign manifest is never trusted: the comparison falls back to size and
mtime, and says so. Format: gzip-compressed JSON, ``{"format": "sftpmirror-manifest",
"version": 1, "files": {path: [size, mtime, sha256]}}``; written to a temporary name and renamed
over the old one, and only after the uploads.
"""

from __future__ import annotations

import gzip
import json
import posixpath
import re
import time
import zlib
from dataclasses import dataclass, field
from sys import intern
from typing import Any

from sftpmirror.defaults import DEFAULT_MANIFEST
from sftpmirror.engine.hashing import HASH_CHUNK
from sftpmirror.engine.interned import shared_mtime
from sftpmirror.engine.model import Entry, Kind, Listing, Op, Plan, Report
from sftpmirror.engine.tree import NotFound, Tree, TreeError, read_chunks
from sftpmirror.errors import RemoteError

FORMAT = "sftpmirror-manifest"
VERSION = 2  # 2: a record's hash may be null (matched by size and mtime only)
READS = (1, 2)
DEFAULT_NAME = DEFAULT_MANIFEST
_NOT_A_FILE = {"dir": "a directory", "symlink": "a symbolic link", "other": "a FIFO or device"}
# Bounds on reading a manifest (a record is about 100 bytes inflated, 40 compressed: these
# hold some 600,000 files).
MAX_COMPRESSED = 32 << 20
MAX_DECOMPRESSED = 64 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Record:
    """What we know of a deployed file. ``sha256`` None: the file matched the source by size and
    mtime only (a site deployed by another tool, taken over): no bytes of it were written or
    hashed by us, so the record vouches for nothing more, and ``--verify`` hashes it."""

    size: int
    mtime: int
    sha256: str | None


@dataclass(slots=True)
class Manifest:
    files: dict[str, Record] = field(default_factory=dict)

    def encode(self) -> bytes:
        files = {
            p: [r.size, r.mtime, r.sha256] for p, r in sorted(self.files.items())
        }  # None: null
        text = json.dumps({"format": FORMAT, "version": VERSION, "files": files})
        return gzip.compress(text.encode(), mtime=0)

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        """Parse; ValueError (with the reason) for anything that is not our manifest."""
        try:
            text = gzip.decompress(data)
        except (OSError, EOFError, ValueError, zlib.error) as e:
            raise ValueError(f"not a gzip JSON file ({e})") from None
        return cls.decode_json(text)

    @classmethod
    def decode_json(cls, text: bytes | bytearray) -> Manifest:
        """Parse the inflated JSON; ValueError for anything that is not our manifest."""
        try:
            doc: Any = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise ValueError(f"not a gzip JSON file ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not an sftpmirror manifest")
        if doc.get("version") not in READS:
            raise ValueError(f"manifest version {doc.get('version')!r} is not 1 or 2")
        files: dict[str, Record] = {}
        raw = doc.get("files")
        if not isinstance(raw, dict):
            raise ValueError("manifest has no file table")
        fullmatch = _SHA256.fullmatch
        for path, value in raw.items():
            if not (isinstance(path, str) and isinstance(value, list) and len(value) == 3):
                raise ValueError(f"bad manifest entry for {path!r}")
            size, mtime, sha256 = value
            if not (
                type(size) is int
                and type(mtime) is int
                and (sha256 is None or (isinstance(sha256, str) and fullmatch(sha256)))
            ):
                raise ValueError(f"bad manifest entry for {path!r}")
            # (the path interned: the listings' paths are, so one string serves all three)
            files[intern(path)] = Record(size, shared_mtime(mtime), sha256)
        return cls(files)


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and bool(_SHA256.fullmatch(value))


def apply(listing: Listing, manifest: Manifest) -> int:
    """Give each file whose size and mtime match its record the recorded hash (or, for a record
    without one, mark it known by size and mtime only); mark the listing's hashes authoritative.
    Returns how many files drifted from their record."""
    drifted = 0
    entries, records, file = listing.entries, manifest.files, Kind.FILE
    for path, entry in entries.items():  # (a value replaced: the dict's size never changes)
        record = records.get(path)
        if record is None or entry.kind is not file:
            continue
        if record.size == entry.size and record.mtime == entry.mtime:
            if record.sha256 is None:
                listing.unverified.add(path)
            else:
                entries[path] = entry.with_sha256(record.sha256)
        else:
            drifted += 1
    listing.hashes_known = True
    listing.owned = manifest.files.keys()  # (a view: no second table of 100,000 paths)
    return drifted


def touched(plan: Plan) -> set[str]:
    """Files the plan will write: their records must go before the first upload, so a run
    that dies half-way never leaves a record vouching for a file it replaced. A file to be
    deleted keeps its record: if the run stops first, the file is as recorded, and still ours
    (a later --delete removes it)."""
    return {
        a.path
        for a in plan.actions()
        if a.entry.kind is Kind.FILE and a.op in (Op.COPY, Op.REPLACE, Op.ATTRS)
    }


def without(manifest: Manifest, paths: set[str]) -> Manifest:
    return Manifest({p: r for p, r in manifest.files.items() if p not in paths})


def after_run(
    src: Listing, dst: Listing, plan: Plan, report: Report, before: Manifest | None = None
) -> Manifest:
    """What the destination holds after a run, as far as it is known for sure.

    Copied files are recorded with the hash of the bytes sent; files left alone keep the
    destination's size and mtime with the hash known for them (recorded before, or hashed on
    the server by ``--verify``). One that matched the source by size and mtime alone gets a
    record without a hash: a record vouches only for bytes this run or an earlier one wrote or
    hashed, never for the source's (F4). Files whose action failed are left out. ``before``:
    the manifest the server holds; its records are reused where they say the same (no new
    object per unchanged file, and comparing the two manifests is then cheap).
    """
    failed = {f.path for f in report.failures}
    attrs = {a.path for a in plan.actions() if a.op is Op.ATTRS}
    copied, entries, file = report.copied, dst.entries, Kind.FILE
    old = before.files if before is not None else {}

    def record(path: str, size: int, mtime: int, sha256: str | None) -> Record:
        known = old.get(path)
        if known is None or (known.size, known.mtime, known.sha256) != (size, mtime, sha256):
            return Record(size, mtime, sha256)
        return known

    files: dict[str, Record] = {}
    for path, s in src.entries.items():
        if s.kind is not file or path in failed:
            continue
        if path in copied:
            size, sent, mtime = copied[path]
            files[path] = Record(size, mtime, sent)
            continue
        d = entries.get(path)
        if d is None or d.kind is not file:
            continue
        files[path] = record(path, d.size, s.mtime if path in attrs else d.mtime, d.sha256)
    # Files we deployed that the source dropped, and this run did not delete (no --delete, or
    # held back): still ours, so a later --delete removes them.
    gone = {a.path for a in plan.actions() if a.op in (Op.DELETE, Op.CLEAR)} - failed
    for path in dst.owned or ():
        if path in files or path in gone or path in src.entries:
            continue
        d = entries.get(path)
        if d is not None and d.kind is file:
            files[path] = record(path, d.size, d.mtime, d.sha256)
    return Manifest(files)


def inside_path(path: str) -> str | None:
    """``path`` normalised, when it stays inside the tree's root; None when it leads out."""
    path = posixpath.normpath(path)
    outside = path.startswith(("/", "../")) or path in ("..", ".")
    return None if outside else path


class ManifestStore:
    """Where the manifest lives: a path on a Tree (relative to its root; may lead outside it,
    as ``../.sftpmirror-manifest.json.gz`` does, or be a local file through a LocalTree)."""

    def __init__(self, tree: Tree, path: str, *, in_mirrored_tree: bool = True) -> None:
        self.tree = tree
        self.path = path
        self.in_mirrored_tree = in_mirrored_tree

    @property
    def inside(self) -> str | None:
        """The manifest's path inside the mirrored tree, if it is inside (to keep it out)."""
        return inside_path(self.path) if self.in_mirrored_tree else None

    async def load(self) -> tuple[Manifest | None, str | None]:
        """The manifest, or None and a sentence saying why it is not used.

        Bounded against a hostile or broken file: only a regular file is opened (a FIFO would
        block the server for good); at most ``MAX_COMPRESSED`` bytes are read and at most
        ``MAX_DECOMPRESSED`` inflated (a gzip bomb stops there), so reading one costs at most
        about that much memory, plus the records it holds."""
        try:
            found = await self.tree.kind_and_size(self.path)
            if found is None:
                return None, self._fallback("no manifest yet")
            kind, size = found
            if kind != "file":
                what = _NOT_A_FILE.get(kind, kind)
                return None, self._fallback(f"manifest ignored: it is {what}, not a regular file")
            data = await self._inflate(size)
        except NotFound:
            return None, self._fallback("no manifest yet")
        except TreeError as e:
            return None, self._fallback(f"cannot read the manifest ({e})")
        except ValueError as e:
            return None, self._fallback(f"manifest ignored: {e}")
        try:
            return Manifest.decode_json(data), None
        except ValueError as e:
            return None, self._fallback(f"manifest ignored: {e}")

    async def _inflate(self, size: int) -> bytearray:
        """The manifest's gzip stream inflated, within the bounds; ValueError past them.
        Inflated a MiB at a time into one buffer: memory is the bound, not twice it. Read
        ahead at the ``size`` listed (its reads and close at once), up to the bound."""
        if size > MAX_COMPRESSED:
            raise ValueError(f"larger than {MAX_COMPRESSED >> 20} MiB")
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = bytearray()
        read = 0
        async with self.tree.open_read(self.path, size) as reader:
            async for chunk in read_chunks(reader, HASH_CHUNK):
                read += len(chunk)
                if read > MAX_COMPRESSED:
                    raise ValueError(f"larger than {MAX_COMPRESSED >> 20} MiB")
                data = chunk
                while data:
                    try:
                        out += inflate.decompress(data, HASH_CHUNK)
                    except zlib.error as e:
                        raise ValueError(f"not a gzip JSON file ({e})") from None
                    if len(out) > MAX_DECOMPRESSED:
                        raise ValueError(f"more than {MAX_DECOMPRESSED >> 20} MiB inflated")
                    data = inflate.unconsumed_tail
        if not inflate.eof:
            raise ValueError("not a gzip JSON file (truncated)")
        return out

    def _fallback(self, why: str) -> str:
        return (
            f"{why} ({self.tree.label}: {self.path}): comparing by size and mtime; "
            "--verify compares content"
        )

    async def save(self, manifest: Manifest) -> None:
        data = manifest.encode()
        entry = Entry(self.path, Kind.FILE, len(data), int(time.time()), 0o600)
        try:
            async with self.tree.open_write(entry, perms=True) as writer:
                await writer.write(data, 0)
        except TreeError as e:
            raise RemoteError(f"cannot write the manifest {self.path}: {e}") from None
