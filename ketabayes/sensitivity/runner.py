"""Running a grid's variants serially, on a :class:`concurrent.futures.Executor`, or on Dask -- losing nothing.

Faults are contained per variant:

* a variant whose analysis raises is recorded by the worker itself (:mod:`.worker`);
* a **dying worker** (``os._exit``, a segfault, the OOM killer) breaks a
  :class:`~concurrent.futures.ProcessPoolExecutor`: the variants that were in
  flight are re-run one at a time on a fresh pool, which identifies the culprit
  (recorded as failed, ``"WorkerDied: ..."``) while all the others complete;
  on Dask the scheduler reschedules the task and, after its
  ``allowed-failures``, raises ``KilledWorker``, which is recorded the same way
  (a finished result lost with a dead worker is recomputed by Dask);
* a **hanging variant** (``timeout=`` seconds) is recorded as failed
  (``"TimeoutError: ..."``) and stopped: the worker processes of a process pool
  are killed and the pool replaced (the other variants in flight are re-queued);
  on Dask the task is cancelled and its worker restarted through its nanny
  (``Client.restart_workers``) in the background, while the other variants go on;
  a thread cannot be stopped, so a thread pool only records the timeout;
* **Ctrl-C** (:class:`KeyboardInterrupt`) cancels the queued futures, shuts the
  pool down without waiting and terminates its worker processes, then re-raises.

Results reach the caller's ``handle`` one variant at a time as they arrive, so
a checkpoint written there holds every finished variant whatever happens next.

Dask: pass the ``distributed.Client`` itself (``client.get_executor()`` works too). Only public
``distributed`` APIs are used (``Client.submit``, ``distributed.wait``, ``Future.result``,
``Client.cancel``, ``Client.processing``, ``Client.nthreads``, ``Client.restart_workers``), except
for reading a ``ClientExecutor``'s client. A variant's timeout clock runs only while the cluster
has a thread for it: with a timeout, no more tasks are in flight than the cluster has worker
threads *now* (fewer while a worker restarts), and the clocks restart whenever a worker leaves.
A restarted worker is not waited for. A ``LocalCluster`` gives up a worker that takes longer
than ``distributed.deploy.lost-worker-timeout`` (15 s by default) to come back -- on a heavily
loaded machine that can be every worker; the grid then stops with a clear error after
:data:`_NO_WORKERS` seconds without workers rather than waiting for ever (raise that setting
for such machines).
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool

from ketabayes.errors import KetabayesError
from ketabayes.sensitivity.spec import Variant
from ketabayes.sensitivity.worker import run_batch

__all__ = ["run_variants"]

#: seconds between checks for timeouts while waiting for results
_POLL = 0.2


def _dask_client(executor):
    """The ``distributed.Client`` behind ``executor`` (the Client itself or ``client.get_executor()``), else None."""
    if not type(executor).__module__.startswith("distributed"):
        return None
    import distributed
    from distributed.cfexecutor import ClientExecutor

    if isinstance(executor, distributed.Client):
        return executor
    if isinstance(executor, ClientExecutor):
        return executor._client  # distributed has no public accessor; pass the Client itself to avoid this
    return None


def _kind(executor) -> str:
    if executor is None:
        return "serial"
    if isinstance(executor, cf.ProcessPoolExecutor):
        return "process"
    if isinstance(executor, cf.ThreadPoolExecutor):
        return "thread"
    if _dask_client(executor) is not None:
        return "dask"
    return "other"


def _dask_threads(client) -> int:
    """Worker threads the cluster has now (0 while every worker is restarting)."""
    return int(sum(client.nthreads().values()))


def _warm_dask(client, workers=None) -> None:
    """Import the engine on the given workers (all by default) before a variant there is timed."""
    try:
        client.run(_ready, workers=workers)
    except Exception:  # noqa: BLE001 - a worker that left meanwhile; its tasks move on
        pass


def n_workers(executor) -> int:
    """Number of parallel workers of an executor (2 when it does not say)."""
    if _kind(executor) == "dask":
        try:
            return max(1, _dask_threads(_dask_client(executor)))
        except Exception:  # noqa: BLE001 - a guess is enough to size batches
            return 2
    return int(getattr(executor, "_max_workers", None) or 2)


def _new_process_pool(old: cf.ProcessPoolExecutor) -> cf.ProcessPoolExecutor:
    """A fresh pool configured like ``old`` (which is broken or was stopped).

    ``concurrent.futures`` keeps a pool's configuration in private attributes only; they have
    been stable since Python 3.7 (``_max_tasks_per_child`` since 3.11).
    """
    kw = dict(max_workers=old._max_workers, mp_context=old._mp_context, initializer=old._initializer,
              initargs=old._initargs)
    if getattr(old, "_max_tasks_per_child", None):
        kw["max_tasks_per_child"] = old._max_tasks_per_child
    return cf.ProcessPoolExecutor(**kw)


def _ready(pause: float = 0.0) -> bool:
    """Warm-up task: import what a variant needs, so a timeout's clock does not count a worker's start-up."""
    import ketabayes.inference.exact  # noqa: F401
    import ketabayes.model.random_effects  # noqa: F401

    time.sleep(pause)
    return True


def _warm(pool, kind: str, workers: int) -> None:
    """Start the workers and import the engine in each of them before any variant is timed."""
    try:
        if kind == "dask":
            _warm_dask(_dask_client(pool))
        elif kind == "process":
            for f in [pool.submit(_ready, 0.05) for _ in range(workers)]:
                f.result(timeout=600)
    except Exception:  # noqa: BLE001 - a broken pool shows itself on the first variant
        pass


def _kill_process_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel what is queued and kill the worker processes (a hung worker ignores a polite shutdown).

    The processes are found in the pool's private ``_processes`` (concurrent.futures offers no
    public way to stop a running task).
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        try:
            p.kill()
        except (OSError, ValueError, AttributeError):
            pass
    for p in processes:
        try:
            p.join(timeout=5)
        except (OSError, ValueError, AttributeError, AssertionError):
            pass


def run_variants(todo: Sequence[Variant], *, make_task: Callable[[Variant], dict], common: dict, executor=None,
                 batch_size: int = 1, timeout: float | None = None, handle: Callable[[dict], None],
                 fail: Callable[[Variant, str], dict]) -> None:
    """Fit ``todo`` and pass every variant's output to ``handle`` as soon as it is known.

    Parameters
    ----------
    todo : sequence of Variant
    make_task : callable
        ``variant -> task`` (built just before submission, so a leave-one-out grid never
        holds more than the in-flight subsets in memory).
    common : dict
        Settings shared by every task (:meth:`Sensitivity._common`).
    executor : Executor or distributed.Client, optional
        ``None`` (serial), a :class:`~concurrent.futures.ProcessPoolExecutor`,
        :class:`~concurrent.futures.ThreadPoolExecutor`, a ``distributed.Client`` (or its
        ``client.get_executor()``) or any other Executor.
    batch_size : int
        Variants per submitted task (1 when ``timeout`` is set).
    timeout : float, optional
        Seconds a variant may run before it is recorded as failed and stopped.
    handle : callable
        Receives each variant's output dict (``fit_id, rows, result, ok``).
    fail : callable
        ``(variant, message) -> output`` of a variant that produced nothing.
    """
    kind = _kind(executor)
    if kind == "serial":
        if timeout is not None:
            raise KetabayesError("timeout= needs an executor that can stop a variant: pass executor= a "
                                 "ProcessPoolExecutor or a Dask distributed.Client")
        for v in todo:
            handle(run_batch([make_task(v)], common)[0])
        return
    _Run(todo, make_task, common, executor, kind, 1 if timeout else max(1, int(batch_size)), timeout,
         handle, fail).go()


#: Dask: seconds to gather a finished result before it counts as lost with its worker (Dask recomputes it)
_GATHER = 5.0
#: Dask: how often one task's result may be lost before its variants are recorded as failed
_MAX_LOST = 5
#: Dask: seconds a restarted worker may take to come back before the grid goes on without it
_RESTART = 120.0
#: Dask: seconds without any worker (after workers were stopped or died) before the grid gives up
_NO_WORKERS = 300.0


class _Run:
    """State of one executor run: queues, futures in flight, replacement pools, worker restarts."""

    def __init__(self, todo, make_task, common, executor, kind, batch_size, timeout, handle, fail):
        self.make_task, self.common, self.kind = make_task, common, kind
        self.timeout, self.handle, self.fail = timeout, handle, fail
        self.pool = executor
        self.client = _dask_client(executor) if kind == "dask" else None
        self.owned: list = []  # replacement pools created here (shut down at the end)
        self.queue = deque(list(todo[i:i + batch_size]) for i in range(0, len(todo), batch_size))
        self.suspects: deque = deque()  # variants in flight when a worker died: re-run one at a time
        self.inflight: dict = {}  # future -> [variants, start time, isolated]
        self.lost: dict = {}  # Dask: future -> how often its finished result was lost with its worker
        self.restarts: list = []  # Dask: threads restarting the workers of hung variants
        self.live = -1  # Dask: worker threads seen at the last check
        self.known: set = set()  # Dask: workers warmed up (a restarted worker is new: warmed before it is timed)
        self.no_workers_since: float | None = None
        self.disturbed = False  # Dask: workers were stopped here or died
        self.workers = workers = n_workers(executor)
        if timeout is not None:
            _warm(self.pool, kind, workers)
            if kind == "dask":
                try:
                    self.known = set(self.client.nthreads())
                except Exception:  # noqa: BLE001 - seen on the first check
                    pass
        # with a timeout, no more futures than worker threads: a submitted variant starts at once, so its
        # clock is true (on Dask the number of live threads, which drops while a worker restarts)
        self.window = workers if timeout else 2 * workers

    # ------------------------------------------------------------------ submission
    def _submit(self, batch: list[Variant], isolated: bool) -> None:
        tasks = [self.make_task(v) for v in batch]
        if self.kind == "dask":  # Dask futures directly: their status tells a lost result from a failed task
            fut = self.client.submit(run_batch, tasks, self.common, pure=False)
        else:
            fut = self.pool.submit(run_batch, tasks, self.common)
        self.inflight[fut] = [batch, time.monotonic(), isolated]

    def _fill(self) -> None:
        window = self.window
        if self.kind == "dask":
            window = self._dask_window()
        if self.suspects:  # isolation: one suspect alone in flight identifies a worker killer exactly
            if not self.inflight and window > 0:
                self._submit([self.suspects.popleft()], True)
            return
        while self.queue and len(self.inflight) < window:
            self._submit(self.queue.popleft(), False)

    def _dask_window(self) -> int:
        """Futures allowed in flight on Dask; restarts the clocks when workers left (their tasks move)."""
        try:
            threads = self.client.nthreads()
            live = int(sum(threads.values()))
        except Exception:  # noqa: BLE001 - the scheduler is busy: keep the last count
            threads, live = {}, max(self.live, 0)
        if live < self.live:
            self._restart_clocks()
        new = set(threads) - self.known
        if new and self.timeout is not None:  # a (re)started worker imports the engine before it is timed
            _warm_dask(self.client, sorted(new))
            self.known |= new
            self._restart_clocks()
        self.live = live
        now = time.monotonic()
        if live == 0 and (self.queue or self.inflight or self.suspects):
            self.no_workers_since = self.no_workers_since or now
            if self.disturbed and now - self.no_workers_since > _NO_WORKERS:
                raise KetabayesError(
                    f"the Dask cluster has had no workers for {_NO_WORKERS:g} s after workers were stopped or "
                    "died; the variants that finished were handed over (and checkpointed). For a LocalCluster on "
                    "a busy machine raise dask.config 'distributed.deploy.lost-worker-timeout' (default 15 s), "
                    "after which the cluster gives up a worker that is slow to restart")
        else:
            self.no_workers_since = None
        return min(self.window, live) if self.timeout is not None else self.window

    def _restart_clocks(self) -> None:
        now = time.monotonic()
        for entry in self.inflight.values():
            entry[1] = now

    # ------------------------------------------------------------------ main loop
    def go(self) -> None:
        try:
            while self.queue or self.suspects or self.inflight:
                self._fill()
                done = self._wait()
                broken = []
                for fut in done:
                    broken += self._collect(fut)
                if broken:
                    self._recover(broken, killed=False)
                if self.timeout is not None:
                    self._check_timeouts()
        except BaseException:  # KeyboardInterrupt, SystemExit, a failing handle: stop everything, re-raise
            self._abort()
            self.restarts.clear()  # interrupted: do not wait for worker restarts either
            raise
        finally:
            for p in self.owned:
                p.shutdown(wait=True)
            for th in self.restarts:  # let the restarts finish before the caller uses (or closes) the cluster
                th.join(_RESTART + 10.0)

    def _wait(self):
        futs = list(self.inflight)
        if not futs:
            time.sleep(_POLL)  # Dask with no worker yet: nothing to wait for
            return []
        if self.kind != "dask":
            return cf.wait(futs, timeout=_POLL, return_when=cf.FIRST_COMPLETED)[0]
        import distributed

        try:
            return distributed.wait(futs, timeout=_POLL, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            return []

    def _dask_outputs(self, fut):
        """Outputs of a done Dask future; ``None`` while its result is being recomputed (lost with its worker)."""
        if fut.status == "cancelled":  # cancelled elsewhere (e.g. client.restart()): run the batch again
            batch = self.inflight.pop(fut)[0]
            self.queue.appendleft(batch)
            return None
        try:
            return fut.result(timeout=_GATHER)  # raises the task's error (e.g. KilledWorker)
        except TimeoutError:
            pass
        # finished, but the worker holding the result died before it was gathered: Dask recomputes it
        n = self.lost[fut] = self.lost.get(fut, 0) + 1
        if n < _MAX_LOST:
            self.inflight[fut][1] = time.monotonic()
            return None
        raise RuntimeError(f"its result was lost {n} times (workers died before it was gathered)")

    def _collect(self, fut) -> list:
        """Hand over a finished future's outputs; return it as lost if its worker (pool) broke."""
        if fut not in self.inflight:  # handed over already
            return []
        batch, _, isolated = self.inflight[fut]
        try:
            if self.kind == "dask":
                outs = self._dask_outputs(fut)
                if outs is None:
                    return []
            else:
                outs = fut.result()
        except BrokenProcessPool as e:
            self.inflight.pop(fut, None)
            return [(batch, isolated, e)]
        except cf.CancelledError as e:
            self.inflight.pop(fut, None)
            return [(batch, False, e)]
        except Exception as e:  # noqa: BLE001 - e.g. Dask's KilledWorker: the task itself was lost
            self.inflight.pop(fut, None)
            self.lost.pop(fut, None)
            self.disturbed = True
            if len(batch) == 1:
                self.handle(self.fail(batch[0], _died(e, self.kind)))
            else:  # which variant of the batch was it? run them one at a time
                self.suspects.extend(batch)
            return []
        self.inflight.pop(fut, None)
        self.lost.pop(fut, None)
        if self.kind == "dask":
            fut.release()
        for out in outs:
            self.handle(out)
        return []

    def _recover(self, lost: list, *, killed: bool) -> None:
        """The process pool broke: collect the other futures, replace the pool, re-queue or blame."""
        for fut in list(self.inflight):  # a broken pool fails every pending future at once
            try:
                fut.result(timeout=30)
            except BaseException:  # noqa: BLE001 - sorted out below
                pass
            lost += self._collect(fut)
        for batch, isolated, e in lost:
            if killed:  # we stopped the pool because another variant hung: these are innocent
                self.queue.appendleft(batch)
            elif isolated:  # alone in flight when the worker died: this variant killed it
                self.handle(self.fail(batch[0], _died(e, self.kind)))
            else:
                self.suspects.extend(batch)
        if self.kind == "process":
            if self.pool in self.owned:
                self.owned.remove(self.pool)
                self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = _new_process_pool(self.pool)
            self.owned.append(self.pool)
            if self.timeout is not None:
                _warm(self.pool, self.kind, self.workers)

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        late = [f for f, (b, t0, _) in self.inflight.items() if now - t0 > self.timeout * len(b)]
        if not late:
            return
        if self.kind == "dask":  # hand over what is done before a worker restart loses it
            for f in [f for f in self.inflight if f not in late and f.status == "finished"]:
                self._collect(f)
        for fut in late:
            batch = self.inflight.pop(fut)[0]
            self.lost.pop(fut, None)
            stopped = self._stop_dask(fut) if self.kind == "dask" else self.kind == "process"
            if not stopped:
                fut.cancel()
            note = "" if stopped else " (it could not be stopped: it may still be running)"
            msg = f"TimeoutError: the variant did not finish within timeout={self.timeout:g} s and was stopped{note}"
            for v in batch:
                self.handle(self.fail(v, msg))
        if self.kind == "process":
            _kill_process_pool(self.pool)
            self._recover([], killed=True)
        # stopping workers took time the variants still in flight must not be charged for
        self._restart_clocks()

    def _stop_dask(self, fut) -> bool:
        """Cancel a hung task and restart its worker (``Client.restart_workers``, in the background).

        Only a restart stops the thread running the task. The grid does not wait for the worker
        to come back: the other variants go on on the other workers. Returns whether the task is
        stopped (False for a worker without a nanny, e.g. ``LocalCluster(processes=False)``: its
        thread runs on).
        """
        client = self.client
        try:
            busy = [w for w, keys in client.processing().items() if fut.key in keys]
            client.cancel([fut], force=True)
            info = client.scheduler_info()["workers"]
        except Exception:  # noqa: BLE001 - the variant is recorded as failed either way
            return False
        if not busy:  # it had not started (or its worker is gone already)
            return True
        if not all((info.get(w) or {}).get("nanny") for w in busy):  # in-process workers cannot be restarted
            return False
        self.disturbed = True

        def restart():
            try:
                client.restart_workers(busy, timeout=_RESTART, raise_for_error=False)
            except Exception:  # noqa: BLE001 - e.g. a worker without a nanny, or the client closed meanwhile
                pass

        th = threading.Thread(target=restart, name="ketabayes-dask-restart", daemon=True)
        th.start()
        self.restarts.append(th)
        return True

    def _abort(self) -> None:
        for fut in self.inflight:
            fut.cancel()
        if self.kind == "process":
            _kill_process_pool(self.pool)
        elif self.kind == "dask":
            try:
                self.client.cancel(list(self.inflight), force=True)
            except Exception:  # noqa: BLE001 - best effort while interrupting
                pass
        elif hasattr(self.pool, "shutdown"):
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.inflight.clear()


def _died(e: BaseException, kind: str) -> str:
    where = "Dask worker" if kind == "dask" else "worker process"
    return (f"WorkerDied: the {where} died while fitting this variant ({type(e).__name__}: {e}); the other "
            "variants were fitted")
