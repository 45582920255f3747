"""The on-disk kernel cache: where generated loop modules are written and how
they are imported.

:mod:`fastgd.backends` generates the source of each loop module; this module
puts it in a directory and imports it, so numba (``cache=True``) keeps the
compiled machine code next to it, in ``__pycache__``.

Where the modules go, resolved again whenever ``fastgd.config.CACHE`` or
``fastgd.config.CACHE_DIR`` changes:

- Cache on: ``CACHE_DIR/kernels-<digest>``, the digest naming one version of
  the generated code (so versions never share files), reused by every later
  process.
- Cache directory not writable: one per-user directory,
  ``<tempdir>/fastgd-<uid>/kernels-<digest>``, with one ``RuntimeWarning``. It
  is created private (0o700) and refused if it is not a real directory owned
  by this user that nobody else can write, since its modules are imported;
  then, with another warning, a private temporary directory removed at exit
  (nothing is cached between processes).
- Cache off: a private temporary directory of this process, removed at
  interpreter exit. A forked child makes its own, and removes only its own.

Modules are written atomically (a temporary file renamed over the old one),
only when their source changed, and imported under names that do not depend
on the directory's location, so a copied or moved cache stays valid. Damaged
cache files (a truncated ``.pyc``, numba index or data file) are removed with
one ``RuntimeWarning`` per directory and the kernel is compiled again.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import stat
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from types import ModuleType

from fastgd import config

#: The directory resolved for :data:`_cache_key`, the ``(config.CACHE,
#: config.CACHE_DIR)`` it was resolved for; ``None`` forces a new resolution.
_cache_dir: str | None = None
_cache_key: tuple | None = None
_dir_lock = threading.Lock()
#: Temporary directories made by this process (path -> pid), removed at exit.
_private: dict[str, int] = {}
#: Warnings already given in this process (one each).
_warned: set = set()


def _warn_once(key, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def directory(digest: Callable[[], str]) -> str:
    """The folder generated modules go into, for the current ``config.CACHE``
    and ``config.CACHE_DIR`` (resolved again when either changes).

    Cache on: ``CACHE_DIR/kernels-<digest>``; if that cannot be written, one
    per-user directory ``<tempdir>/fastgd-<uid>/kernels-<digest>`` (with one
    ``RuntimeWarning``). Cache off: a private temporary directory removed at
    interpreter exit.

    ``digest`` returns the digest of everything the generated modules'
    machine code depends on; it is called only when a cache directory is
    resolved.
    """
    global _cache_dir, _cache_key
    key = (config.CACHE, config.CACHE_DIR)
    path = _cache_dir
    if path is not None and _cache_key == key:
        return path
    with _dir_lock:
        if _cache_dir is None or _cache_key != key:
            _cache_dir = _resolve_directory(*key, digest)
            _cache_key = key
        return _cache_dir


def _resolve_directory(cache: bool, cache_dir: str, digest: Callable[[], str]) -> str:
    if not cache:
        return _private_directory()
    leaf = "kernels-" + digest()
    path = os.path.join(cache_dir, leaf)
    error = _prepare(path)
    if error is None:
        return path
    user = _user_directory()
    fallback = os.path.join(user, leaf) if user is not None else None
    if fallback is not None and _prepare(fallback) is None:
        _warn_once(
            ("unwritable", path),
            f"fastgd: the kernel cache directory {path!r} is not writable ({error}); "
            f"caching compiled kernels in {fallback!r} instead (set FASTGD_CACHE_DIR "
            "or fastgd.config.CACHE_DIR to choose another)",
        )
        return fallback
    private = _private_directory()
    _warn_once(
        ("unwritable", path),
        f"fastgd: the kernel cache directory {path!r} is not writable ({error}), nor is "
        f"a per-user directory in {tempfile.gettempdir()!r}; compiling into {private!r}, "
        "removed at exit (nothing is cached between processes)",
    )
    return private


def _prepare(path: str) -> OSError | None:
    """Create ``path`` and check that files can be written in it; the error if not."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as e:
        return e
    return None


def _user_directory() -> str | None:
    """``<tempdir>/fastgd-<uid>``, created private (0o700); None unless it is a
    real directory owned by this user that nobody else can write (its
    modules are imported, so a foreign one would run foreign code)."""
    try:
        owner = str(os.getuid())
    except AttributeError:  # Windows
        import getpass

        try:
            owner = getpass.getuser()
        except Exception:
            return None
    path = os.path.join(tempfile.gettempdir(), f"fastgd-{owner}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_mode & 0o022:
        return None
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return None
    return path


def _private_directory() -> str:
    """This process's temporary kernel directory (made once, removed at exit)."""
    pid = os.getpid()
    for path, creator in _private.items():
        if creator == pid and os.path.isdir(path):
            return path
    path = tempfile.mkdtemp(prefix="fastgd-kernels-")
    _private[path] = pid
    return path


@atexit.register
def _remove_private_directories() -> None:
    # a forked child inherits the table: it removes only what it made itself
    pid = os.getpid()
    for path, creator in list(_private.items()):
        if creator == pid:
            shutil.rmtree(path, ignore_errors=True)
            del _private[path]


def _module_name(directory: str, name: str) -> str:
    """The module's name in ``sys.modules``, which numba's cached code uses to
    find the module's globals again in a later process.

    It does not depend on where the directory is (a moved or copied cache
    stays valid). Two cache directories of one process share names, which is
    harmless: a name stands for one generated source (and the digest in the
    directory's name for one version of fastgd); the private directories of
    an uncached process have unique names.
    """
    return "_fastgd_kernels_" + os.path.basename(directory).replace("-", "_") + "_" + name


def import_source(
    name: str,
    source: str,
    directory: str,
    forget: Callable[[str, str], None] | None = None,
) -> ModuleType:
    """Write ``source`` as ``name.py`` in ``directory`` (atomically, only if it
    changed) and import it.

    If the import fails and the module has files from an earlier process
    (a damaged ``.pyc``, say), they are removed with a warning and the
    import is tried once more (see :func:`discard_files` for ``forget``).
    """
    try:
        return _write_and_import(name, source, directory)
    except Exception as e:
        if not discard_files(directory, name, e, forget):
            raise
    return _write_and_import(name, source, directory)


def _write_and_import(name: str, source: str, directory: str) -> ModuleType:
    path = os.path.join(directory, name + ".py")
    try:
        with open(path, encoding="utf-8") as f:
            unchanged = f.read() == source
    except (OSError, ValueError):  # missing, unreadable or not UTF-8
        unchanged = False
    if not unchanged:
        os.makedirs(directory, exist_ok=True)  # removed since it was resolved?
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(source)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    modname = _module_name(directory, name)
    spec = importlib.util.spec_from_file_location(modname, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    return module


def _module_files(directory: str, name: str) -> list[str]:
    """The files of generated module ``name``: its source, bytecode and numba's
    index (``.nbi``) and data (``.nbc``) files in ``__pycache__``."""
    files = [os.path.join(directory, name + ".py")]
    pycache = os.path.join(directory, "__pycache__")
    try:
        entries = os.listdir(pycache)
    except OSError:
        entries = []
    # generated names have no dots, so "name." matches no other module's files
    files += [os.path.join(pycache, e) for e in entries if e.startswith(name + ".")]
    return [f for f in files if os.path.lexists(f)]


def discard_files(
    directory: str,
    name: str,
    error: BaseException,
    forget: Callable[[str, str], None] | None = None,
) -> bool:
    """Remove module ``name``'s files after ``error`` (warning once per
    directory); False if it had none in the cache (so the error is not the
    cache's).

    ``forget(directory, name)``, if given, is called after the files are
    removed, for the caller to drop modules it imported from them.
    """
    cached = [f for f in _module_files(directory, name) if not f.endswith(".py")]
    if not cached:
        return False
    _warn_once(
        ("damaged", directory),
        f"fastgd: damaged kernel cache files in {directory!r} "
        f"({type(error).__name__}: {error}); removed them and compiling again",
    )
    for f in _module_files(directory, name):
        try:
            os.remove(f)
        except OSError:
            pass
    if forget is not None:
        forget(directory, name)
    return True


_NUMBA_CACHING = os.path.join("numba", "core", "caching.py")


def repair_on_damage(dispatcher):
    """Make a ``numba.njit(cache=True)`` function of fastgd's own modules
    survive damaged cache files: if numba fails loading its cached machine
    code (a truncated or overwritten index or data file), the function's cache
    index is flushed with one ``RuntimeWarning`` and the function compiles
    again, saving fresh files. Costs nothing per call: only the cache load
    (the first call of each signature) is wrapped. Returns ``dispatcher``.
    """
    cache = getattr(dispatcher, "_cache", None)
    load = getattr(cache, "load_overload", None)
    if load is None:  # caching off in this numba, or not a dispatcher
        return dispatcher
    name = dispatcher.py_func.__module__ + "." + dispatcher.py_func.__qualname__

    def load_overload(sig, target_context):
        try:
            return load(sig, target_context)
        except Exception as e:
            _warn_once(
                ("damaged", name),
                f"fastgd: damaged numba cache files for {name} in "
                f"{getattr(cache, '_cache_path', '?')!r} ({type(e).__name__}: {e}); "
                "discarded them and compiling again",
            )
            cache.flush()
            return None

    cache.load_overload = load_overload
    return dispatcher


def from_numba_cache(error: BaseException) -> bool:
    """Whether ``error`` (or one it chains) was raised while numba loaded its cache."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        tb = error.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename.endswith(_NUMBA_CACHING):
                return True
            tb = tb.tb_next
        error = error.__cause__ or error.__context__
    return False


def _after_fork_in_child() -> None:
    global _cache_dir, _dir_lock
    # another thread of the parent may have held the lock at the fork: the
    # child has only this thread, so a fresh lock is the correct state
    _dir_lock = threading.Lock()
    if _cache_dir in _private:  # the parent removes it at exit: make our own
        _cache_dir = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
