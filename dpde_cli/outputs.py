"""Writing outputs, in one place for every command: where they may go, how they are
written, how a write fails.

- ``atomic_path`` (and ``staged`` for the outputs of one input together): write a
  temporary file beside the output, rename it over the output on success. A failure or a
  kill leaves no partial file under the final name; ``remove_stale_temporaries`` removes
  what a killed run left on the next start.
- ``writing``: the one error path of every write. ``atomic_path`` runs each write inside
  it, standard output goes through ``write_stdout`` or ``stdout_guard``: an OSError
  becomes an ``OutputError`` that names the file ("cannot write out/a.png (No space left
  on device)"), never a temporary name.
- ``refuse_inputs_as_outputs``: an output that is one of the run's inputs (the same path
  once links are followed, or the same file by inode: a hard link) is refused before any
  work, so that no command ever writes over a photo, a depth map or a weights file.

Example:
    >>> with atomic_path("out/depth.npy") as tmp:
    ...     np.save(tmp, depth)
    >>> refuse_inputs_as_outputs([("-o x.png", "x.png")], ["x.png"])  # UsageError
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None

from dpde_cli.errors import OutputError, UsageError

STDOUT_NAME = "standard output"
"""How messages name standard output."""


def os_reason(exc: OSError) -> str:
    """The OS's words for a failed write, PIL's words for a short write read as a full disk."""
    reason = exc.strerror or str(exc)
    if "requested and" in reason:  # PIL: "-1 bytes requested and 0 written"
        reason = f"short write, disk full? ({reason})"
    return reason


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Run a write of ``path``: an OSError in it is raised as an OutputError naming ``path``
    (its output, for a ``staged`` temporary path).

    A file standing where a folder of the path should be is named as the reason.
    """
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        path = shown_name(path)
        reason = os_reason(exc)
        if exc.errno in (errno.EEXIST, errno.ENOTDIR):
            blocker = file_in_the_way(path.parent)
            if blocker is not None:
                reason = f"{blocker} is a file, not a folder"
        raise OutputError(path, reason, exc.errno) from exc


@contextlib.contextmanager
def stdout_guard() -> Iterator[None]:
    """Run writes to standard output (flushed at the end) through the one error path.

    After a failure (a full disk, a closed pipe) standard output points at /dev/null, so
    that Python's own flush at exit does not fail a second time with a traceback.

    Raises:
        OutputError: "cannot write standard output (reason)".
    """
    try:
        yield
        sys.stdout.flush()
    except OSError as exc:
        _stdout_to_null()
        raise OutputError(STDOUT_NAME, os_reason(exc), exc.errno) from exc


def write_stdout(text: str) -> None:
    """Write ``text`` on standard output and flush it (``stdout_guard``'s error path).

    Where standard output is a file descriptor, ``text`` goes in one ``os.write`` after
    whatever Python had buffered, so the lines of processes sharing it (torchrun's ranks,
    ``xargs -P``) never mix mid-line (a pipe keeps writes up to 4096 bytes whole).
    """
    with stdout_guard():
        try:
            fd = sys.stdout.fileno()
        except (OSError, ValueError, io.UnsupportedOperation):
            sys.stdout.write(text)  # a stream without a descriptor (a test's buffer)
            return
        sys.stdout.flush()
        data = text.encode(sys.stdout.encoding or "utf-8", sys.stdout.errors or "strict")
        while data:
            data = data[os.write(fd, data) :]


def _stdout_to_null() -> None:
    """Point the process's standard output at /dev/null (where it has a descriptor)."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return  # a stream without a descriptor (a test's buffer): nothing left to flush
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


# ------------------------------------------------------------------------------ files

_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    A failure (or Ctrl-C) leaves no partial file under the final name. Any OSError, in the
    caller's write too, is raised as an ``OutputError`` naming ``path`` (``writing``, the
    one error path of every write): the temporary name means nothing to a user. A
    symbolic link is followed (its target is replaced, the link stays), and a device, FIFO
    or socket (``--json /dev/null``) is yielded itself, to be written into. The temporary
    file is locked while it lives, so that ``remove_stale_temporaries`` can tell the
    leftovers of a killed run from the files of a live one. A path that ``staged`` handed
    out is already a temporary file: it is yielded itself.
    """
    shown = Path(path)
    with writing(shown):
        if written_in_place(shown) or shown in _STAGED:
            yield shown  # renaming over /dev/null or a FIFO would put a plain file there
            return
        path = real_target(shown)
        fd, tmp = _temporary(path)
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
            os.close(fd)


def _temporary(path: Path) -> tuple[int, Path]:
    """A new temporary file beside ``path`` (its folders made), locked while it lives."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    try:
        if fcntl is not None:
            with contextlib.suppress(OSError):  # no locks here (some network file systems):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # then none is removed either
        os.chmod(name, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
    except BaseException:
        os.close(fd)
        os.unlink(name)
        raise
    return fd, Path(name)


_STAGED: dict[Path, Path] = {}
"""The temporary paths ``staged`` has handed out and not yet renamed -> their outputs."""


def shown_name(path: str | Path) -> Path:
    """The name to show for a path written: its output's for a ``staged`` temporary path."""
    return _STAGED.get(Path(path), Path(path))


@contextlib.contextmanager
def staged(targets: Mapping[str, Path]) -> Iterator[dict[str, Path]]:
    """Temporary paths for the outputs of one input, renamed over them together when the
    block ends without an error.

    A failure in the block leaves every output as it was (its errors pass unchanged); a
    kill leaves none of the set under its final name (only the renames at the end can be
    cut short; a rename that fails removes the outputs renamed before it). Writers given a
    staged path (``write_depth``, ``write_text``, ``write_point_cloud``...) write it
    directly, and their errors name the output (``shown_name``).

    Args:
        targets: the outputs by role (devices and FIFOs among them are written in place).

    Yields:
        The paths to write, by the same roles.
    """
    temps: dict[str, Path] = {}
    held: list[tuple[int, Path]] = []
    renamed: list[Path] = []
    made: list[Path] = []  # folders that did not exist: a failure removes them again
    try:
        for role, target in targets.items():
            target = Path(target)
            if written_in_place(target):
                temps[role] = target
                continue
            with writing(target):
                final = real_target(target)
                made += [p for p in (final.parent, *final.parent.parents) if not p.exists()]
                fd, tmp = _temporary(final)
            held.append((fd, tmp))
            temps[role] = tmp
            _STAGED[tmp] = target
        yield temps
        for _fd, tmp in held:
            target = _STAGED[tmp]
            with writing(target):
                final = real_target(target)
                os.replace(tmp, final)
            renamed.append(final)
    except BaseException:
        for final in renamed:  # a rename failed: the outputs renamed before it go too
            final.unlink(missing_ok=True)
        for _fd, tmp in held:
            tmp.unlink(missing_ok=True)
        for folder in sorted(set(made), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):  # not empty: another writer's files in it
                folder.rmdir()
        raise
    finally:
        for fd, tmp in held:
            _STAGED.pop(tmp, None)
            tmp.unlink(missing_ok=True)
            os.close(fd)


def remove_stale_temporaries(paths: Iterable[str | Path]) -> list[Path]:
    """Remove the temporary files that killed writes of these outputs left behind.

    A temporary file of ``atomic_path`` is ``.<stem>.<8 characters>.tmp<suffix>`` beside
    its output, locked by its writer while it lives: one that can be locked has no writer
    left and goes. Each folder is listed once, however many outputs it holds.

    Returns:
        The files removed.
    """
    if fcntl is None:  # no flock (Windows): a live file cannot be told from a dead one
        return []
    wanted: dict[Path, list[re.Pattern[str]]] = {}
    for path in map(Path, paths):
        pattern = re.escape(f".{path.stem}.") + "[a-z0-9_]{8}" + re.escape(f".tmp{path.suffix}")
        wanted.setdefault(path.parent, []).append(re.compile(pattern))
    removed = []
    for folder, patterns in wanted.items():
        try:
            names = [e.name for e in os.scandir(folder) if e.name.startswith(".")]
        except OSError:
            continue  # no folder yet: nothing left in it
        for name in names:
            if any(p.fullmatch(name) for p in patterns) and _remove_if_dead(folder / name):
                removed.append(folder / name)
    return removed


def _remove_if_dead(path: Path) -> bool:
    """Remove a temporary file that no live writer holds locked; whether it went."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False  # a live writer holds it
    try:
        path.unlink()
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def real_target(path: str | Path) -> Path:
    """``path`` with its symbolic links followed: writing there keeps a link a link.

    Raises:
        OSError: a loop of links.
    """
    path = Path(path)
    if not path.is_symlink():
        return path
    loop = OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path))
    try:
        target = path.resolve()
    except RuntimeError:  # Python < 3.13 reports a loop of links this way
        raise loop from None
    if target.is_symlink():  # Python >= 3.13 hands the loop back unresolved
        raise loop
    return target


STREAMS = ("/dev/stdout", "/dev/stderr")
"""Names that mean the process's own streams, whatever file or pipe is behind them."""


def written_in_place(path: str | Path) -> bool:
    """Whether a writer must write into ``path`` rather than replace it: a device, FIFO or
    socket (``/dev/null``, a named pipe), or a stream name (``/dev/stdout``,
    ``/dev/fd/N``), which means the stream even where a regular file is behind it."""
    name = str(Path(path).absolute())
    if name in STREAMS or name.startswith("/dev/fd/"):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def refuse_unwritable(label: str, path: str | Path, folder: bool = False) -> None:
    """Refuse, before a long job starts, an output it could not write at its end.

    Args:
        label: how the user named it, for the message ("--json", "-o", "--out").
        path: the output file, or with ``folder`` the folder its files go in.

    Raises:
        UsageError: "LABEL PATH: cannot write there (reason)", or a folder where a file
            should be.
    """
    path = Path(path)
    if not folder and path.is_dir():
        raise UsageError(f"{label} {path}: is a folder; give a file name")
    if not folder and written_in_place(path):  # /dev/null, a FIFO: written into
        if not os.access(path, os.W_OK):
            raise UsageError(f"{label} {path}: cannot write there (permission denied)")
        return
    try:
        reason = why_unwritable(path if folder else real_target(path).parent)
    except OSError as exc:  # a loop of links
        reason = exc.strerror
    if reason:
        raise UsageError(f"{label} {path}: cannot write there ({reason})")


def why_unwritable(folder: str | Path) -> str | None:
    """Why files could not be written in ``folder``, or None when they could, so that a
    long job learns before it starts that it could not write its results. It makes, then
    removes, a file in the folder or, where the folder does not exist yet, in its nearest
    existing parent (creating nothing that stays).

    Returns:
        None, or the reason: "X is a file, not a folder" where a file stands in the path,
        else the OS's words ("Permission denied", "Read-only file system").
    """
    folder = Path(folder)
    blocker = file_in_the_way(folder)
    if blocker is not None:
        return f"{blocker} is a file, not a folder"
    existing = next((p for p in (folder, *folder.parents) if p.is_dir()), Path("."))
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def file_in_the_way(folder: str | Path) -> Path | None:
    """The file that stands where ``folder`` or one of its parents should be, if any."""
    folder = Path(folder)
    return next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)


# ------------------------------------------------------------------------------ aliasing


def refuse_inputs_as_outputs(
    outputs: Iterable[tuple[str, str | Path]], inputs: Iterable[str | Path]
) -> None:
    """Refuse outputs that are inputs, before any work.

    An output is an input when both name the same path once links are followed, or the
    same existing regular file (device and inode: a hard link). A device or FIFO (written
    into, never replaced) counts by path only.

    Args:
        outputs: (how to name it in a message, path), e.g. ("-o x.png", "x.png").
        inputs: every file the run reads: photos, depth maps, weights, camera files.

    Raises:
        UsageError: "<name> is the input <file>: dpde never writes over its inputs; ...",
            with how many more outputs clash.
    """
    by_path: dict[Path, Path] = {}
    by_inode: dict[tuple[int, int], Path] = {}
    for source in map(Path, inputs):
        by_path.setdefault(_resolved(source), source)
        key = _inode(source)
        if key is not None:
            by_inode.setdefault(key, source)
    clashes = []
    for name, path in outputs:
        key = _inode(Path(path))
        source = by_path.get(_resolved(Path(path))) or (by_inode.get(key) if key else None)
        if source is not None:
            clashes.append((name, source))
    if clashes:
        name, source = clashes[0]
        more = f" ({len(clashes) - 1} more outputs clash too)" if len(clashes) > 1 else ""
        raise UsageError(
            f"{name} is the input {source}: dpde never writes over its inputs; choose "
            f"another output{more}"
        )


def refuse_outputs_inside(outputs: Iterable[tuple[str, str | Path]], folders: Iterable[Path]):
    """Refuse outputs that are, or lie inside, one of ``folders`` (the data folders a run
    reads, whose files cannot all be listed), by resolved path and by the inode of each
    existing folder on the output's path (a bind mount, a second name).

    Raises:
        UsageError: "<name> is inside the data folder <folder>: ...".
    """
    resolved = {_resolved(Path(f)): Path(f) for f in folders}
    inodes = {key: Path(f) for f in folders if (key := _inode(Path(f), folders=True))}
    for name, path in outputs:
        path = _resolved(Path(path))
        for place in (path, *path.parents):
            folder = resolved.get(place) or inodes.get(_inode(place, folders=True) or (-1, -1))
            if folder is not None:
                raise UsageError(
                    f"{name} is inside the data folder {folder}: dpde never writes where "
                    "its inputs are; choose a place outside it"
                )


def _resolved(path: Path) -> Path:
    """``path`` absolute with its links followed (as far as they lead)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a loop of links
        return path.absolute()


def _inode(path: Path, folders: bool = False) -> tuple[int, int] | None:
    """(device, inode) of an existing regular file (or folder, with ``folders``), else None."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(info.st_mode) or (folders and stat.S_ISDIR(info.st_mode)):
        return info.st_dev, info.st_ino
    return None
