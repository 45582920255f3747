"""The kernel cache on a fresh or damaged machine, forked children and threads.

Everything that compiles into a chosen directory, forks or starts OpenMP threads
runs in a subprocess with a timeout, so neither this process's caches nor its
OpenMP state are involved, and a hang fails the test instead of the suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastgd
from fastgd import backends, config, kernel_cache

TIMEOUT = 180

#: One Adam step (serial, float32); prints how many numba compilations it
#: needed, then the result's bytes.
STEP = """
import numpy as np, fastgd
from numba.core import event
compiled = []
class Listener(event.Listener):
    def on_start(self, ev): compiled.append(ev.data["dispatcher"])
    def on_end(self, ev): pass
x = np.linspace(-1, 1, 1000, dtype=np.float32)
with event.install_listener("numba:compile", Listener()):
    fastgd.Adam(x, lr=0.1, backend="serial").step(np.sin(x))
print(len(compiled))
print(x.tobytes().hex())
"""


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTGD_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users' processes write .pyc files
    env.update(extra)
    return env


def _python(code: str, env: dict, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
    )


def _step(env: dict) -> tuple[int, str, str]:
    run = _python(STEP, env)
    assert run.returncode == 0, run.stderr[-3000:]
    compiled, result = run.stdout.split()[-2:]
    return int(compiled), result, run.stderr


# -- damaged cache files ------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A cache directory filled by one process, and that process's result."""
    root = tmp_path_factory.mktemp("pristine")
    compiled, result, _ = _step(_env(FASTGD_CACHE_DIR=str(root)))
    assert compiled >= 1
    (kernels,) = root.glob("kernels-*")
    return root, kernels.name, result


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:20])


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(max(path.stat().st_size, 64)))


def _garbage_after_header(path: Path) -> None:  # a .pyc whose header still matches
    path.write_bytes(path.read_bytes()[:16] + b"\x00garbage" * 10)


@pytest.mark.parametrize(
    "pattern, damage, warns",
    [
        ("__pycache__/*.nbi", _truncate, True),
        ("__pycache__/*.nbi", _garbage, True),
        ("__pycache__/*.nbc", _truncate, True),
        ("__pycache__/*.nbc", _garbage, True),
        ("__pycache__/*.pyc", _garbage_after_header, True),
        ("*.py", _garbage, False),  # rewritten: its source is checked
    ],
    ids=["nbi-truncated", "nbi-garbage", "nbc-truncated", "nbc-garbage", "pyc", "py"],
)
def test_damaged_cache_files_are_replaced(pristine, tmp_path, pattern, damage, warns):
    """Before: numba's unpickling error (or importlib's 'bad marshal data')
    failed every later process. Now: one warning, the module's files are
    removed and compiled again, and the process after that loads the cache."""
    root, leaf, expected = pristine
    cache = tmp_path / "cache"
    shutil.copytree(root, cache)  # copy2 keeps mtimes: numba's index stays valid
    kernels = cache / leaf
    (victim,) = kernels.glob(pattern)
    damage(victim)
    env = _env(FASTGD_CACHE_DIR=str(cache))

    compiled, result, stderr = _step(env)
    assert result == expected
    if warns:
        assert compiled >= 1
        assert "RuntimeWarning" in stderr and "damaged kernel cache files" in stderr, stderr
        assert str(kernels) in stderr
        assert stderr.count("damaged kernel cache files") == 1
    else:
        # numba 0.68 stamps its index with a hash of the source's content, so
        # the rewritten (identical) module keeps its cached machine code
        assert compiled == 0
        assert "Warning" not in stderr, stderr

    compiled, result, stderr = _step(env)  # repaired: loaded from disk, silently
    assert (compiled, result) == (0, expected)
    assert "Warning" not in stderr, stderr


def test_copied_cache_directory_is_reused(pristine, tmp_path):
    """Module names do not depend on the cache's location: a copied or moved
    cache (CI caches, container layers) loads without compiling."""
    root, _, expected = pristine
    shutil.copytree(root, tmp_path / "moved")
    compiled, result, stderr = _step(_env(FASTGD_CACHE_DIR=str(tmp_path / "moved")))
    assert (compiled, result) == (0, expected)
    assert "Warning" not in stderr, stderr


def test_real_compile_errors_are_not_mistaken_for_damage():
    e = ValueError("not from the cache")
    assert not kernel_cache.from_numba_cache(e)
    try:
        raise e
    except ValueError as caught:
        assert not kernel_cache.from_numba_cache(caught)


# -- unwritable or disabled cache ------------------------------------------------------------


def _temp_entries(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir())


def test_unwritable_cache_dir_falls_back_to_one_per_user_directory(tmp_path):
    """Before: each process compiled into a new fastgd-kernels-* temporary
    directory, never removed. Now: one <tmp>/fastgd-<uid>, reused and private."""
    blocker = tmp_path / "file"
    blocker.write_text("a regular file: nothing can be created under it (even by root)")
    unwritable = blocker / "sub"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = _env(FASTGD_CACHE_DIR=str(unwritable), TMPDIR=str(tmp))
    user = f"fastgd-{os.getuid()}"
    fallback = tmp / user

    runs = [_step(env) for _ in range(2)]
    for _, _, stderr in runs:
        assert stderr.count("RuntimeWarning") == 1, stderr
        assert str(unwritable) in stderr and str(fallback) in stderr, stderr
    assert runs[0][0] >= 1 and runs[1][0] == 0  # the second process reused the first's kernels
    assert runs[0][1] == runs[1][1]
    assert _temp_entries(tmp) == [user]  # no fastgd-kernels-* left behind
    assert fallback.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("kind", ["symlink", "group-writable"])
def test_unsafe_fallback_directory_is_not_used(tmp_path, monkeypatch, kind):
    """A fallback that is a symlink, or that others can write, would let them
    plant code that fastgd imports: compile into a private directory instead."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for name, value in [("_cache_dir", None), ("_cache_key", None), ("_private", {})]:
        monkeypatch.setattr(kernel_cache, name, value)
    monkeypatch.setattr(kernel_cache, "_warned", set())
    fallback = tmp_path / f"fastgd-{os.getuid()}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    if kind == "symlink":
        fallback.symlink_to(elsewhere)
    else:
        fallback.mkdir()
        os.chmod(fallback, 0o770)
    blocker = tmp_path / "file"
    blocker.write_text("")
    saved = config.CACHE, config.CACHE_DIR
    try:
        config.CACHE, config.CACHE_DIR = True, str(blocker / "sub")
        assert kernel_cache._user_directory() is None
        with pytest.warns(RuntimeWarning, match="removed at exit") as record:
            directory = kernel_cache.directory(backends._source_digest)
        assert str(blocker / "sub") in str(record[0].message)
    finally:
        config.CACHE, config.CACHE_DIR = saved
    assert Path(directory).parent == tmp_path
    assert Path(directory).name.startswith("fastgd-kernels-")
    assert list(elsewhere.iterdir()) == []
    kernel_cache._remove_private_directories()
    assert not Path(directory).exists()


@pytest.mark.parametrize("how", ["environment", "assignment"])
def test_disabled_cache_uses_a_private_directory_removed_at_exit(tmp_path, how):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    extra = {"FASTGD_DISABLE_CACHE": "1"} if how == "environment" else {}
    code = f"""
        import os, sys, numpy as np, fastgd
        from fastgd import config, kernel_cache
        if not {bool(extra)}:
            config.CACHE = False
        x = np.ones(100, np.float32)
        opt = fastgd.Adam(x, backend="serial")
        opt.step(x)
        parent = kernel_cache._cache_dir
        print(parent)
        assert os.listdir(parent), "the kernels are written there"
        pid = os.fork()
        if pid == 0:  # a child that exits normally runs atexit: it must spare the parent's
            fastgd.SGD(np.ones(10, np.float32), lr=0.1).step(np.ones(10, np.float32))
            print("child", kernel_cache._cache_dir, flush=True)
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert os.path.isdir(parent)
        opt.step(x)
    """
    run = _python(code, _env(TMPDIR=str(tmp), **extra))
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.split()
    parent, child = lines[0], lines[-1]
    assert Path(parent).parent == tmp and Path(parent).name.startswith("fastgd-kernels-")
    assert child != parent and Path(child).parent == tmp
    assert _temp_entries(tmp) == []  # both removed, each by its own process
    assert "Warning" not in run.stderr, run.stderr


# -- fork ---------------------------------------------------------------------------------------

FORK = """
import os, sys, traceback, warnings
import numpy as np, fastgd
from fastgd import backends, config

N = 100_003  # 2.8 MB per Adam step: "auto" runs the parallel loop
rng = np.random.default_rng(0)
x0 = rng.standard_normal(N).astype(np.float32)
grads = [rng.standard_normal(N).astype(np.float32) for _ in range(3)]

ref = x0.copy()
r = fastgd.Adam(ref, lr=1e-2, backend="serial")
for g in grads:
    r.step(g)

a, b = x0.copy(), x0.copy()
auto = fastgd.Adam(a, lr=1e-2, backend="auto")
par = fastgd.Adam(b, lr=1e-2, backend="parallel")
{before}
generation = config._generation
pid = os.fork()
if pid == 0:
    ok = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for g in grads[{first}:]:
                auto.step(g)
                par.step(g)
            fresh = fastgd.Adam(x0.copy(), backend="auto")
        messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
        print("child", auto.resolved_backend, par.resolved_backend, fresh.resolved_backend,
              len(messages), config._generation - generation, flush=True)
        print("\\n".join(messages), flush=True)
        ok = np.array_equal(a, ref) and np.array_equal(b, ref)
    except BaseException:
        traceback.print_exc()
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
print("exit", os.waitstatus_to_exitcode(status), flush=True)
"""


def _fork_run(before: str, first: int) -> subprocess.CompletedProcess:
    return _python(FORK.format(before=before, first=first), _env())


def test_fork_after_a_parallel_step_runs_serial_in_the_child():
    """Before: the child died at its next parallel region ("fork() called from
    a process already using GNU OpenMP", SIGTERM). Now it steps serially, bit
    for bit equal to the serial reference, and the parent stays parallel."""
    before = """
auto.step(grads[0])
par.step(grads[0])
assert auto.resolved_backend == par.resolved_backend == "parallel"
"""
    run = _fork_run(before, first=1)
    out = run.stdout
    assert run.returncode == 0, out + run.stderr[-3000:]
    assert "exit 0" in out, out + run.stderr[-3000:]
    child = out.split("child ")[1].split()
    assert child[:3] == ["serial", "serial", "serial"], out
    assert child[3] == "1", out  # one warning: backend="parallel" was overridden
    assert child[4] == "1", out  # cached plans were invalidated at the fork
    assert "backend='parallel' runs serial loops" in out and "fork" in out


def test_fork_before_any_parallel_loop_keeps_parallel():
    """No threading layer started in the parent: the child may start its own."""
    run = _fork_run("", first=0)
    out = run.stdout
    assert "exit 0" in out, out + run.stderr[-3000:]
    assert out.split("child ")[1].split()[:4] == ["parallel", "parallel", "parallel", "0"], out


def test_fork_while_another_thread_holds_fastgd_locks():
    """The child has one thread: locks some other thread of the parent held
    at the fork (compiling, or bumping the generation) must not block it."""
    code = """
        import os, numpy as np, fastgd
        from fastgd import backends, config, kernel_cache
        x = np.ones(100_003, np.float32)
        fastgd.Adam(x, backend="parallel").step(x)  # the child will bump the generation
        backends._lock.acquire()
        kernel_cache._dir_lock.acquire()
        config._generation_lock.acquire()
        pid = os.fork()
        if pid == 0:
            y = np.ones(10, np.float32)
            fastgd.RMSprop(y, lr=0.1, backend="serial").step(y)  # imports a new module
            os._exit(0 if y[0] < 1 else 1)
        _, status = os.waitpid(pid, 0)
        print("exit", os.waitstatus_to_exitcode(status))
    """
    run = _python(code, _env())
    assert run.returncode == 0, run.stderr[-3000:]
    assert "exit 0" in run.stdout, run.stdout + run.stderr[-3000:]


POOL = """
import multiprocessing as mp
import numpy as np, fastgd

N = 100_003

def work(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(N).astype(np.float32)
    opt = fastgd.AdamW(x, lr=1e-2, weight_decay=0.1)  # "auto": parallel-sized
    for _ in range(3):
        opt.step(np.sin(x))
    return x.tobytes()

def reference(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(N).astype(np.float32)
    opt = fastgd.AdamW(x, lr=1e-2, weight_decay=0.1, backend="serial")
    for _ in range(3):
        opt.step(np.sin(x))
    return x.tobytes()

if __name__ == "__main__":
    x = np.ones(N, np.float32)
    opt = fastgd.Adam(x)
    opt.step(x)
    assert opt.resolved_backend == "parallel"
    with mp.get_context("fork").Pool(2) as pool:
        results = pool.map(work, range(4))
    assert results == [reference(s) for s in range(4)]
    print("pool ok")
"""


def test_fork_pool_after_a_parallel_step_finishes(tmp_path):
    """Before: every worker was killed at its first step and Pool.map hung forever."""
    script = tmp_path / "pool_script.py"
    script.write_text(POOL)
    run = subprocess.run(
        [sys.executable, str(script)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "pool ok" in run.stdout
    assert "Terminating" not in run.stderr


def test_select_after_fork(monkeypatch):
    monkeypatch.setattr(backends, "_fork_reason", "it was forked (test)")
    monkeypatch.setattr(backends, "_warned", set())
    assert backends.select(10**12, "auto") == "serial"
    with pytest.warns(RuntimeWarning, match=r"it was forked \(test\)"):
        assert backends.select(10**12, "parallel") == "serial"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process
        assert backends.select(10**12, "parallel") == "serial"
    assert backends.select(0, "serial") == "serial"
    assert backends.select(0, "cuda") == "cuda"


# -- threads --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["serial", "parallel"])
def test_two_threads_stepping_two_optimizers_match_sequential(backend):
    """Distinct optimizers are independent: GNU OpenMP (numba's 'omp' layer)
    accepts concurrent parallel regions from different threads."""
    n, steps = 200_003, 20

    def run(seed, out, barrier=None):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(n).astype(np.float32)
        opt = (fastgd.Adam if seed == 0 else fastgd.RMSprop)(x, lr=1e-2, backend=backend)
        if barrier is not None:
            barrier.wait()
        for _ in range(steps):
            opt.step(np.cos(x))
        out[seed] = x

    sequential: dict = {}
    run(0, sequential)
    run(1, sequential)
    concurrent: dict = {}
    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=run, args=(s, concurrent, barrier)) for s in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads)
    for s in (0, 1):
        assert np.array_equal(concurrent[s], sequential[s])


#: fastgd's own numba functions with ``cache=True`` (clipping, minimize's
#: gradient measures): prints the clipped norm and minimize's result.
OWN_FUNCTIONS = """
import numpy as np, fastgd
g = np.linspace(-1, 1, 1000)
norm = fastgd.clip_grad_norm_(g, 1.0)
res = fastgd.minimize(lambda x: (x @ x, 2 * x), np.ones(5), jac=True, method="sgd",
                      options=dict(lr=0.1, maxiter=50))
print(repr(float(norm)), res.x.tobytes().hex(), g.tobytes().hex())
"""


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_cache_of_fastgds_own_numba_functions_recovers(tmp_path, damage):
    numba_cache = tmp_path / "numba"
    env = _env(NUMBA_CACHE_DIR=str(numba_cache), FASTGD_CACHE_DIR=str(tmp_path / "fastgd"))
    first = _python(OWN_FUNCTIONS, env)
    assert first.returncode == 0, first.stderr[-3000:]
    files = [f for f in numba_cache.rglob("*") if f.suffix in (".nbi", ".nbc")]
    own = [f for f in files if "clip" in f.name or "_measures" in f.name]
    assert own, sorted(f.name for f in files)
    for f in own:
        f.write_bytes(b"" if damage == "truncate" else os.urandom(64))
    second = _python(OWN_FUNCTIONS, env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout == first.stdout  # the same numbers, recompiled
    assert "damaged numba cache files" in second.stderr
    third = _python(OWN_FUNCTIONS, env)  # the repaired cache loads silently
    assert third.returncode == 0 and third.stdout == first.stdout
    assert "damaged" not in third.stderr
