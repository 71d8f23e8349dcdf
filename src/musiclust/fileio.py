"""Small file helpers: safe names from ids, atomic writes, JSON."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
)


class UserInputError(Exception):
    """Bad input the user can fix (a param, a file they named): shown as one line, no traceback."""


class InputFileError(UserInputError):
    """An input file could not be used; ``reason`` is a short machine-readable tag for reports."""

    def __init__(self, path: str | Path, reason: str, detail: str = "") -> None:
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))


class DiskFullError(UserInputError):
    """The disk (or the user's quota) is full: the stage stops; it is never one song's problem."""


#: errno values that mean "no space": a full disk (ENOSPC) or an exhausted quota (EDQUOT)
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
#: how the same errors read when a library passes on only their text (yt-dlp, ffmpeg)
_DISK_FULL_TEXT = ("no space left on device", "disk quota exceeded")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) says the disk or quota is full."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return True
        if any(t in str(exc).lower() for t in _DISK_FULL_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_error(
    exc: BaseException, path: str | Path, need_bytes: int | None = None, hint: str = ""
) -> DiskFullError:
    """The one-line :class:`DiskFullError` for ``exc``: which path, the free space there, what is needed."""
    path = Path(path)
    where = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    free = shutil.disk_usage(where).free
    code = getattr(exc, "errno", None)
    why = os.strerror(code) if code in DISK_FULL_ERRNOS else str(exc).splitlines()[0][:200]
    need = f", at least {_size(need_bytes)} more is needed" if need_bytes else ""
    return DiskFullError(
        f"the disk is full: writing {path} failed ({why}); {_size(free)} free on that disk{need}; "
        f"free some space and re-run{hint}"
    )


@contextmanager
def disk_full_stops(path: str | Path, hint: str = "") -> Iterator[None]:
    """Turn a full disk met inside the block into one :class:`DiskFullError` naming ``path``."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise disk_full_error(exc, getattr(exc, "filename", None) or path, hint=hint) from None
        raise


def _size(n: int) -> str:
    if n < 1e6:
        return f"{n / 1e3:.0f} kB"
    return f"{n / 1e6:.1f} MB" if n < 1e9 else f"{n / 1e9:.2f} GB"


def file_mode() -> int:
    """The mode a plain ``open()`` gives a new file here: ``0o666`` less the process umask.

    Temporary files (``mkstemp``) are made ``0o600``; an output renamed from one gets this mode
    so that it is as readable as any other file the user writes.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:  # Linux: read without changing it
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it (and put it back)
    os.umask(mask)
    return 0o666 & ~mask


#: reasons :func:`check_input_file` gives (report tags)
MISSING = "missing file"
BROKEN_LINK = "broken link"
LINK_LOOP = "symlink loop"
OUTSIDE_ROOTS = "outside allowed roots"
NOT_REGULAR = "not a regular file"
PERMISSION_DENIED = "permission denied"


def resolve_roots(roots: list[str | Path] | tuple[str | Path, ...]) -> tuple[Path, ...]:
    """Absolute, symlink-free forms of the folders input files may come from."""
    return tuple(Path(r).expanduser().resolve() for r in roots)


def check_input_file(path: str | Path, roots: tuple[Path, ...]) -> Path:
    """The resolved ``path`` if it is a readable regular file inside one of ``roots``.

    Nothing is read here (the file is opened and closed at most): a path named
    by a manifest or ``labels.csv`` cell is data, and ``/etc/shadow``, ``../..``,
    ``/dev/zero`` or a named pipe must be refused before anything reads them.
    ``roots`` come from :func:`resolve_roots`; symlinks are followed first, so a
    link inside a root pointing outside it is refused too. Raises
    :class:`InputFileError` with reason ``missing file``, ``broken link``,
    ``symlink loop``, ``outside allowed roots``, ``not a regular file`` or
    ``permission denied``.
    """
    path = Path(path)
    real = _resolve_existing(path)
    if not any(real.is_relative_to(r) for r in roots):
        listed = ", ".join(str(r) for r in roots) or "none"
        raise InputFileError(
            path,
            OUTSIDE_ROOTS,
            f"resolves to {real}, outside the input's folder and data.allowed_roots ({listed}); "
            "add its folder to data.allowed_roots to use it",
        )
    mode = os.stat(real).st_mode
    if not stat.S_ISREG(mode):
        raise InputFileError(path, NOT_REGULAR, f"{_file_kind(mode)}, not a regular file")
    try:
        with open(real, "rb"):
            pass
    except PermissionError as exc:
        raise InputFileError(
            path, PERMISSION_DENIED, exc.strerror or "cannot be opened for reading"
        ) from None
    return real


def _resolve_existing(path: Path) -> Path:
    """``path`` with symlinks followed; :class:`InputFileError` if it, or what it links to, is missing."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        raise InputFileError(path, MISSING, "no such file") from None
    except NotADirectoryError:
        raise InputFileError(path, MISSING, "a folder in the path is a file") from None
    except PermissionError:
        raise InputFileError(path, PERMISSION_DENIED, "a folder in the path cannot be entered") from None
    try:
        real = path.resolve(strict=True)
    except RuntimeError:  # Python < 3.13 reports a loop this way
        raise InputFileError(path, LINK_LOOP, "the symbolic link points (through others) at itself") from None
    except FileNotFoundError:
        raise InputFileError(
            path, BROKEN_LINK, f"symbolic link to {os.readlink(path)!r}, which does not exist"
        ) from None
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            raise InputFileError(
                path, LINK_LOOP, "the symbolic link points (through others) at itself"
            ) from None
        if isinstance(exc, PermissionError):
            raise InputFileError(path, PERMISSION_DENIED, exc.strerror or str(exc)) from None
        raise InputFileError(path, BROKEN_LINK, exc.strerror or str(exc)) from None
    return real


def _file_kind(mode: int) -> str:
    """What a non-regular file is, in words, from its ``st_mode``."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


def read_bounded(path: str | Path, max_bytes: int) -> tuple[bytes, bool]:
    """At most ``max_bytes`` of a file, and whether it was longer (never reads more than one extra byte)."""
    with open(path, "rb") as fh:
        # never ask for more than the file holds: read(n) allocates n bytes up front
        size = os.fstat(fh.fileno()).st_size
        data = fh.read(min(max_bytes, size) + 1)
    return data[:max_bytes], len(data) > max_bytes


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Hard-link ``src`` to ``dst`` (no extra disk), copying where links are impossible."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def safe_id(raw: str, max_len: int = 80) -> str:
    """Turn any id into a safe, stable file-name stem.

    Path separators, ``..``, spaces, control and non-ASCII characters cannot
    survive: ``../../etc/passwd`` becomes ``etc_passwd-<hash>``. When anything
    had to change, a short hash of the original is appended so two different
    ids never collide on one name.
    """
    text = unicodedata.normalize("NFC", str(raw))  # one id for the NFC and NFD spellings of a name
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE.sub("_", ascii_).strip("._-")
    cleaned = re.sub(r"_+", "_", cleaned)[:max_len] or "id"
    # CON, NUL, COM1, aux.txt ...: names Windows gives to devices, so a collection holding them
    # could not be checked out there
    reserved = cleaned.split(".")[0].upper() in _WINDOWS_DEVICES
    if cleaned != text or reserved:
        # surrogateescape: a file name that is not valid UTF-8 still hashes to stable bytes
        digest = hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        cleaned = f"{cleaned}-{digest}"
    return cleaned


def source_digest(paths: Iterable[str]) -> hashlib._Hash:
    """SHA-256 over ``musiclust``'s source files under ``paths`` (relative to the package: a module,
    or a subpackage and every ``*.py`` below it, in name order), each preceded by its relative path.

    What a stage's output depends on beyond its inputs and params, where the stage keys a store of
    its own (the cluster stage) or records it for DVC (the configure stage, for the train stages).
    """
    root = Path(__file__).parent
    h = hashlib.sha256()
    for rel in paths:
        p = root / rel
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        for f in files:
            h.update(f.relative_to(root).as_posix().encode() + b"\0")
            h.update(f.read_bytes())
    return h


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename: never a half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(
            tmp, file_mode()
        )  # mkstemp makes it 0600: an output (a report, say) is for others to read too
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    """Write pretty, key-sorted JSON atomically (stable diffs for git-tracked metrics)."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=_json_default)
    # "replace": a file name that is not UTF-8 (lone surrogates in Python) must not fail the write
    atomic_write_bytes(path, (text + "\n").encode("utf-8", "replace"))


def read_json(path: str | Path) -> Any:
    with Path(path).open(encoding="utf-8") as fh:
        return json.load(fh)


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Write a frame to Parquet atomically, without the pandas index."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave half a table behind
        raise


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
