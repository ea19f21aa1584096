"""A run directory owns itself: one writer at a time, and a refused run leaves it as it was.

The lock is an flock on `<dir>/.lock` holding the writer's pid: the kernel releases it
when the process ends however it ends, so a lock left by a killed run is stale by
construction and the next run takes it. Hydra writes `.hydra/` and `run.log` into the
run directory before our code runs; `Before` remembers what was there so that a run
refused on a check puts it back (and removes a directory this invocation created).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from hydra.experimental.callback import Callback

from envs.errors import InputError
from sim.manifest import Manifest

LOCK = ".lock"
# What Hydra writes into a run directory before the task function starts.
HYDRA_FILES = (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "run.log")

_held: dict[Path, int] = {}  # directory -> open lock file descriptor, this process
_before: dict[Path, Before] = {}  # directories named on the command line, as they were


def lock(run_dir: Path) -> None:
    """Hold run_dir's lock until release() or process exit; InputError if another holds it."""
    run_dir = Path(run_dir).resolve()
    if run_dir in _held:
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a directory (hydra.run.dir must name a directory)")
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise InputError(
                f"{run_dir}: in use by another run (pid {holder}); wait for it to end"
            ) from None
        try:  # the holder may have removed the file between our open and our lock
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _held[run_dir] = fd


def release(run_dir: Path) -> None:
    """Give up run_dir's lock (no-op when this process does not hold it)."""
    run_dir = Path(run_dir).resolve()
    fd = _held.pop(run_dir, None)
    if fd is None:
        return
    (run_dir / LOCK).unlink(missing_ok=True)
    os.close(fd)


def release_all() -> None:
    for run_dir in list(_held):
        release(run_dir)


class Before:
    """What a directory held of Hydra's files before this invocation, to put back on refusal."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.existed = self.path.exists()
        self.files = {
            name: (self.path / name).read_bytes()
            for name in HYDRA_FILES
            if (self.path / name).is_file()
        }
        self.had_hydra_dir = (self.path / ".hydra").is_dir()

    def restore(self) -> None:
        """Undo Hydra's writes; a directory this invocation created is removed whole."""
        release(self.path)
        if not self.existed:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for name in HYDRA_FILES:
            target = self.path / name
            if name in self.files:
                target.write_bytes(self.files[name])
            elif target.is_file():
                target.unlink()
        hydra_dir = self.path / ".hydra"
        if not self.had_hydra_dir and hydra_dir.is_dir() and not any(hydra_dir.iterdir()):
            hydra_dir.rmdir()


def remember(path: Path) -> None:
    """Note what path holds now, before Hydra writes into it."""
    path = Path(path).resolve()
    _before[path] = Before(path)


def undo(run_dir: Path) -> None:
    """Put run_dir back as it was before this invocation: as remembered, or (a directory
    Hydra made for this job, holding only its own files) removed whole."""
    run_dir = Path(run_dir).resolve()
    if run_dir in _before:
        _before[run_dir].restore()
        return
    release(run_dir)
    if run_dir.is_dir() and only_hydra_files(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)


def only_hydra_files(run_dir: Path) -> bool:
    """Whether run_dir holds nothing but what Hydra writes at a job's start (and our lock)."""
    names = {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if not p.is_dir()}
    return names <= {*HYDRA_FILES, LOCK}


SWEEP_PARENT = "TIPLAB_SWEEP_PARENT"  # the pid of the process that launched a sweep's workers


# The sweep this process launched, once it started: its directory, and whether its runs
# are this machine's joblib workers (not cluster jobs, which live on after Ctrl-C here).
_sweep: dict[str, object] = {}


def launching_sweep() -> None:
    """Mark this process as a sweep's parent, for the workers its launcher starts."""
    os.environ[SWEEP_PARENT] = str(os.getpid())


def sweeping_in(sweep_dir: Path, local: bool) -> None:
    """Remember where this process's sweep writes (Hydra resolves it only as the sweep
    starts, e.g. from the time): Ctrl-C then names it, and marks its runs if local."""
    _sweep.update(dir=Path(sweep_dir), local=local)


class SweepStart(Callback):
    """Hydra callback (conf/config.yaml): a sweep's parent learns where its sweep writes."""

    def on_multirun_start(self, config, **kwargs) -> None:
        launcher = str(config.hydra.launcher.get("_target_", ""))
        sweeping_in(Path(config.hydra.sweep.dir), local="joblib" in launcher)


def sweep_dir() -> Path | None:
    """The directory of the sweep this process launched, if it has started."""
    return _sweep.get("dir")


def local_sweep() -> bool:
    """Whether this process launched a sweep whose runs are its own worker processes."""
    return bool(_sweep.get("local"))


def stop_with_sweep_parent(every_s: float = 1.0) -> None:
    """In a local sweep's worker process (joblib): interrupt the run (as Ctrl-C does) once
    the process that launched the sweep is gone, so a killed sweep leaves no orphan workers.
    (Not for cluster jobs: their launching process lives on another machine.)"""
    parent = int(os.environ.get(SWEEP_PARENT, "0") or 0)
    if not parent or parent == os.getpid():
        return

    def watch() -> None:
        while True:
            time.sleep(every_s)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os.kill(os.getpid(), signal.SIGINT)
                return
            except PermissionError:  # alive, another user's: not ours to judge
                pass

    threading.Thread(target=watch, name="sweep-parent-watch", daemon=True).start()


def mark_abandoned_runs(sweep_dir: Path, within_s: float = 10.0) -> None:
    """After Ctrl-C to a local sweep (not cluster jobs, which go on): runs whose worker
    died before recording its interruption are marked interrupted. joblib answers Ctrl-C
    by killing its loky workers (SIGKILL), which can land while a worker is still writing
    that mark. A run whose lock is still held is left to its worker for up to within_s."""
    deadline = time.time() + within_s
    pending = sorted(p.parent for p in Path(sweep_dir).glob("*/manifest.json"))
    while pending:
        pending = [run_dir for run_dir in pending if not marked_if_abandoned(run_dir)]
        if pending and time.time() < deadline:
            time.sleep(0.1)
        else:
            return


def marked_if_abandoned(run_dir: Path) -> bool:
    """Marks run_dir interrupted if its writer is gone and left it running; False while
    its writer still holds the lock."""
    try:
        lock(run_dir)
    except InputError:
        return False
    try:
        manifest = Manifest.read(run_dir)
        if manifest.data["status"] == "running":
            manifest.update(status="interrupted")
    except InputError:  # not a run of ours: left as it is
        pass
    finally:
        release(run_dir)
    return True


@contextmanager
def uninterrupted():
    """SIGINT ignored while a run records that it was interrupted: a second one (Ctrl-C
    again, or the sweep watch once the parent is gone) would cut the record short and
    leave the run marked running. Only the main thread receives signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
