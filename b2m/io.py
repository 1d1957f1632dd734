"""Atomic writers with provenance: every output is written to a temporary name, then renamed.

Arrays are ``.npy`` (memory-mappable) with a ``<name>.json`` sidecar; tables are Parquet with the
provenance in the schema metadata under the key ``b2m``.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import re
import shutil
import socket
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from b2m import __version__
from b2m.errors import InputError, NoSpaceError
from b2m.job import process_running

PROVENANCE_KEY = b"b2m"


def provenance(params: dict) -> dict:
    """The record each output carries: b2m version and the parameters that made it."""
    return {"b2m_version": __version__, "params": params}


def file_digest(path, algorithm: str) -> str:
    """The hex digest (``hashlib`` algorithm: md5, sha256) of a file, read in 16 MiB blocks."""
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, algorithm, _bufsize=1 << 24).hexdigest()


def temporary_sibling(path: Path) -> Path:
    """A hidden name beside ``path`` that keeps its extensions and says which process writes it
    (``.x.tmp-<host>-<pid>.nii.gz`` for ``x.nii.gz``). Temporaries that a killed writer on this host left
    beside ``path`` are removed first."""
    base, dot, extensions = path.name.partition(".")
    host = socket.gethostname()
    pattern = re.compile(rf"\.{re.escape(base)}\.tmp-{re.escape(host)}-(\d+){re.escape(dot + extensions)}")
    for stale in path.parent.glob(f".{glob.escape(base)}.tmp-*"):
        match = pattern.fullmatch(stale.name)
        if match and not process_running(int(match.group(1))):
            stale.unlink(missing_ok=True)
    return path.with_name(f".{base}.tmp-{host}-{os.getpid()}{dot}{extensions}")


@contextlib.contextmanager
def no_space_for(path, size: int | None = None):
    """Turn a full disk (``OSError`` ENOSPC, or EDQUOT: a quota's) in the block into ``NoSpaceError`` naming the
    output ``path``, the ``size`` it needs (bytes, where known up front) and the bytes free beside it."""
    try:
        yield
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise NoSpaceError(path, size, _free_bytes(Path(path).parent)) from err


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, size: int | None = None):
    """Yield a temporary sibling path; rename it to ``path`` only if the block succeeds. A full disk raises
    ``NoSpaceError`` (``no_space_for``; ``size``: the bytes the output needs, where known), with nothing left
    at ``path`` or at the temporary name."""
    path = Path(path)
    with no_space_for(path, size):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_sibling(path)
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


def write_json(path, obj: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (Path,)):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def sidecar_path(path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")


def write_npy(path, array: np.ndarray, params: dict) -> None:
    """Save ``array`` as .npy atomically, with a JSON sidecar holding shape, dtype and provenance."""
    with atomic_path(path, array.nbytes) as tmp:
        with open(tmp, "wb") as f:
            np.save(WriteOnly(f), array, allow_pickle=False)
    write_sidecar(path, {"shape": list(array.shape), "dtype": str(array.dtype), **provenance(params)})


class WriteOnly:
    """A file seen through its ``write`` alone: numpy then writes an array through it in blocks, where it would
    call ``array.tofile``, whose error on a full disk carries no errno (the same bytes either way)."""

    def __init__(self, stream):
        self.write = stream.write


def write_sidecar(path, record: dict) -> None:
    """Write the JSON sidecar of the array just written at ``path``; a full disk removes the array too, so that
    no array is left without its sidecar."""
    try:
        write_json(sidecar_path(path), record)
    except NoSpaceError:
        Path(path).unlink(missing_ok=True)
        raise


FILE_KINDS = {stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISCHR: "a character device",
              stat.S_ISBLK: "a block device", stat.S_ISDIR: "a folder", stat.S_ISSOCK: "a socket"}


def regular_file(path, what: str, fix: str) -> Path:
    """``path`` checked without opening it: it exists, is a regular file (a FIFO would block its reader, a device
    never ends or reads as nothing) and holds at least one byte. Every reader of a study's files calls it first."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError as err:
        raise InputError(path, f"{what} missing" + (" (a link to nothing)" * path.is_symlink()), fix) from err
    except OSError as err:
        raise InputError(path, f"cannot read the {what} ({err.strerror})", fix) from err
    if not stat.S_ISREG(info.st_mode):
        kind = next(name for test, name in FILE_KINDS.items() if test(info.st_mode))
        link = f" ({path} links to {os.path.realpath(path)})" if path.is_symlink() else ""
        raise InputError(path, f"the {what} is {kind}{link}, not a regular file", fix)
    if info.st_size == 0:
        raise InputError(path, f"the {what} is empty (0 bytes)", fix)
    return path


NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
REWRITE_FIX = "rerun the step that writes it; b2m writes numeric arrays only"


def load_npy(path, mmap: bool = False, what: str = "array", fix: str = REWRITE_FIX) -> np.ndarray:
    """A numeric .npy array; a file of another format (an .npz archive among them) is refused naming it, and one
    that holds pickled objects is refused, never unpickled. ``what`` and ``fix`` word the error."""
    path = regular_file(path, what, fix)
    with open(path, "rb") as stream:
        head = stream.read(len(NPY_MAGIC))
    if head != NPY_MAGIC:
        found = "an .npz archive (np.savez)" if head.startswith(ZIP_MAGIC) else f"a file that starts {head!r}"
        raise InputError(path, f"the {what} is {found}, not a .npy array", fix)
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise InputError(path, f"the {what} holds pickled objects, which b2m never loads", REWRITE_FIX) from err
        raise InputError(path, f"the {what} is not a readable .npy array ({err})", fix) from err
    except (OSError, EOFError) as err:
        raise InputError(path, f"the {what} is not a readable .npy array ({err})", fix) from err


def read_npy_rows(path, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a 2-D C-order .npy, read with plain file reads (no memory map, so the
    rows read earlier do not stay resident)."""
    with open(path, "rb") as f:
        shape, fortran_order, dtype = _npy_header(f)
        if len(shape) != 2 or fortran_order:
            raise ValueError(f"{path}: expected a 2-D C-order array, got shape {shape}")
        stop = min(stop, shape[0])
        f.seek(f.tell() + start * shape[1] * dtype.itemsize)
        rows = np.fromfile(f, dtype=dtype, count=max(0, stop - start) * shape[1])
    return rows.reshape(-1, shape[1])


def npy_shape(path) -> tuple[int, ...]:
    with open(path, "rb") as f:
        return _npy_header(f)[0]


def _npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    major, _ = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    return read(f)


class NpyRowWriter:
    """Write a 2-D float32 .npy block of rows at a time, without holding the matrix in memory.

    The number of rows is known up front; ``close`` checks that exactly that many were written and
    renames the temporary file into place; ``abort`` removes it (as a full disk does: ``NoSpaceError``).
    """

    def __init__(self, path, n_rows: int, n_cols: int, params: dict):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.shape = (int(n_rows), int(n_cols))
        self.params = params
        self._tmp = temporary_sibling(self.path)
        self._file = open(self._tmp, "wb")
        self.rows_written = 0
        with self._room():
            np.lib.format.write_array_header_1_0(
                self._file, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                             "fortran_order": False, "shape": self.shape})

    @contextlib.contextmanager
    def _room(self):
        """A full disk aborts the array and names it with its data's size (rows × columns × 4 bytes)."""
        try:
            with no_space_for(self.path, self.shape[0] * self.shape[1] * 4):
                yield
        except NoSpaceError:
            self.abort()
            raise

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[1] != self.shape[1]:
            raise ValueError(f"{self.path}: block of shape {block.shape} does not fit {self.shape}")
        if self.rows_written + block.shape[0] > self.shape[0]:
            raise ValueError(f"{self.path}: more rows than the {self.shape[0]} announced")
        with self._room():
            self._file.write(block.tobytes())
        self.rows_written += block.shape[0]

    def close(self) -> None:
        if self.rows_written != self.shape[0]:
            self.abort()
            raise ValueError(f"{self.path}: wrote {self.rows_written} rows, expected {self.shape[0]}")
        with self._room():
            self._file.close()
            os.replace(self._tmp, self.path)
        write_sidecar(self.path, {"shape": list(self.shape), "dtype": "float32", **provenance(self.params)})

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


def write_parquet(path, table: pd.DataFrame, params: dict) -> None:
    """Write ``table`` as Parquet atomically, with provenance in the schema metadata."""
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    meta = dict(arrow.schema.metadata or {})
    meta[PROVENANCE_KEY] = json.dumps(provenance(params), default=_json_default).encode()
    arrow = arrow.replace_schema_metadata(meta)
    with atomic_path(path) as tmp, open(tmp, "wb") as stream:
        pq.write_table(arrow, stream)


def read_parquet_provenance(path) -> dict:
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[PROVENANCE_KEY]) if PROVENANCE_KEY in meta else {}
