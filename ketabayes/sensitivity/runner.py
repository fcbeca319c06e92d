"""Running a grid's variants serially, on a :class:`concurrent.futures.Executor`, or on Dask -- losing nothing.

Faults are contained per variant:

* a variant whose analysis raises is recorded by the worker itself (:mod:`.worker`);
* a **dying worker** (``os._exit``, a segfault, the OOM killer) breaks a
  :class:`~concurrent.futures.ProcessPoolExecutor`: the variants that were in
  flight are re-run one at a time on a fresh pool, which identifies the culprit
  (recorded as failed, ``"WorkerDied: ..."``) while all the others complete;
  on Dask the scheduler reschedules the task and, after its
  ``allowed-failures``, raises ``KilledWorker``, which is recorded the same way;
* a **hanging variant** (``timeout=`` seconds) is recorded as failed
  (``"TimeoutError: ..."``) and stopped: the worker processes of a process pool
  are killed and the pool replaced (the other variants in flight are re-queued),
  a Dask worker is restarted through its nanny; a thread cannot be stopped, so a
  thread pool only records the timeout;
* **Ctrl-C** (:class:`KeyboardInterrupt`) cancels the queued futures, shuts the
  pool down without waiting and terminates its worker processes, then re-raises.

Results reach the caller's ``handle`` one variant at a time as they arrive, so
a checkpoint written there holds every finished variant whatever happens next.
"""

from __future__ import annotations

import concurrent.futures as cf
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


def _kind(executor) -> str:
    if executor is None:
        return "serial"
    if isinstance(executor, cf.ProcessPoolExecutor):
        return "process"
    if isinstance(executor, cf.ThreadPoolExecutor):
        return "thread"
    if type(executor).__name__ == "ClientExecutor" and hasattr(executor, "_client"):
        return "dask"
    return "other"


def n_workers(executor) -> int:
    """Number of parallel workers of an executor (2 when it does not say)."""
    kind = _kind(executor)
    if kind == "dask":
        try:
            return max(1, sum(executor._client.nthreads().values()))
        except Exception:  # noqa: BLE001 - a guess is enough to size batches
            return 2
    return int(getattr(executor, "_max_workers", None) or 2)


def _new_process_pool(old: cf.ProcessPoolExecutor) -> cf.ProcessPoolExecutor:
    """A fresh pool configured like ``old`` (which is broken or was stopped)."""
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
            pool._client.run(_ready)
        elif kind == "process":
            for f in [pool.submit(_ready, 0.05) for _ in range(workers)]:
                f.result(timeout=600)
    except Exception:  # noqa: BLE001 - a broken pool shows itself on the first variant
        pass


async def _exit_worker():
    """(Runs on a Dask worker.) End the worker process now; its nanny starts a fresh one."""
    import os

    os._exit(1)


def _processing_on(dask_scheduler, key):
    """(Runs on the Dask scheduler.) Address of the worker running task ``key``, if any."""
    ts = dask_scheduler.tasks.get(key)
    return None if ts is None or ts.processing_on is None else ts.processing_on.address


def _kill_process_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel what is queued and kill the worker processes (a hung worker ignores a polite shutdown)."""
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
    executor : Executor, optional
        ``None`` (serial), a :class:`~concurrent.futures.ProcessPoolExecutor`,
        :class:`~concurrent.futures.ThreadPoolExecutor`, a Dask ``ClientExecutor``
        (``client.get_executor()``) or any other Executor.
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
                                 "ProcessPoolExecutor or a Dask client's get_executor()")
        for v in todo:
            handle(run_batch([make_task(v)], common)[0])
        return
    _Run(todo, make_task, common, executor, kind, 1 if timeout else max(1, int(batch_size)), timeout,
         handle, fail).go()


class _Run:
    """State of one executor run: queues, futures in flight, replacement pools."""

    def __init__(self, todo, make_task, common, executor, kind, batch_size, timeout, handle, fail):
        self.make_task, self.common, self.kind = make_task, common, kind
        self.timeout, self.handle, self.fail = timeout, handle, fail
        self.pool = executor
        self.owned: list = []  # replacement pools created here (shut down at the end)
        self.queue = deque(list(todo[i:i + batch_size]) for i in range(0, len(todo), batch_size))
        self.suspects: deque = deque()  # variants in flight when a worker died: re-run one at a time
        self.inflight: dict = {}  # future -> (variants, start time, isolated, dask future)
        self.lost: dict[str, int] = {}  # Dask: how often a batch's finished result was lost with its worker
        self.workers = workers = n_workers(executor)
        if timeout is not None:
            _warm(self.pool, kind, workers)
        # with a timeout, no more futures than workers: a submitted variant starts at once, so its clock is true
        self.window = workers if timeout else 2 * workers

    # ------------------------------------------------------------------ submission
    def _submit(self, batch: list[Variant], isolated: bool) -> None:
        tasks = [self.make_task(v) for v in batch]
        if self.kind == "dask":  # Dask futures directly: their status tells a lost result from a failed task
            fut = self.pool._client.submit(run_batch, tasks, self.common, pure=False)
        else:
            fut = self.pool.submit(run_batch, tasks, self.common)
        self.inflight[fut] = (batch, time.monotonic(), isolated, fut if self.kind == "dask" else None)

    def _fill(self) -> None:
        if self.suspects:  # isolation: one suspect alone in flight identifies a worker killer exactly
            if not self.inflight:
                self._submit([self.suspects.popleft()], True)
            return
        while self.queue and len(self.inflight) < self.window:
            self._submit(self.queue.popleft(), False)

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
            raise
        finally:
            for p in self.owned:
                p.shutdown(wait=True)

    def _wait(self):
        futs = list(self.inflight)
        if not futs:
            return []
        if self.kind != "dask":
            return cf.wait(futs, timeout=_POLL, return_when=cf.FIRST_COMPLETED)[0]
        import distributed

        try:
            with self.pool._client.as_current():
                return distributed.wait(futs, timeout=_POLL, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            return []

    def _dask_result(self, fut, batch):
        """Outputs of a finished Dask future, or ``None`` when its result was lost (re-queued)."""
        if fut.status in ("finished", "error"):
            try:
                return fut.result(timeout=15)
            except TimeoutError:  # finished, but the worker holding the result died before we gathered it
                pass
            finally:
                fut.release()
        key = batch[0].name
        self.lost[key] = self.lost.get(key, 0) + 1
        if self.lost[key] > 3:
            raise RuntimeError(f"the result was lost {self.lost[key]} times (workers died before it was gathered)")
        self.queue.appendleft(batch)
        return None

    def _collect(self, fut) -> list:
        """Hand over a finished future's outputs; return it as lost if its worker (pool) broke."""
        batch, _, isolated, _ = self.inflight.pop(fut)
        try:
            if self.kind == "dask":
                outs = self._dask_result(fut, batch)
                if outs is None:
                    return []
            else:
                outs = fut.result()
        except BrokenProcessPool as e:
            return [(batch, isolated, e)]
        except cf.CancelledError as e:
            return [(batch, False, e)]
        except Exception as e:  # noqa: BLE001 - e.g. Dask's KilledWorker: the task itself was lost
            if len(batch) == 1:
                v = batch[0]
                self.handle(self.fail(v, _died(e, self.kind)))
            else:  # which variant of the batch was it? run them one at a time
                self.suspects.extend(batch)
            return []
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
        late = [f for f, (b, t0, _, _) in self.inflight.items() if now - t0 > self.timeout * len(b)]
        if not late:
            return
        for fut in late:
            batch, t0, _, dfut = self.inflight.pop(fut)
            msg = (f"TimeoutError: the variant did not finish within timeout={self.timeout:g} s and was stopped"
                   + (" (a thread cannot be stopped: it may still be running)" if self.kind == "thread" else ""))
            for v in batch:
                self.handle(self.fail(v, msg))
            if self.kind == "dask":  # find its worker first: a cancelled task is no longer listed as processing
                for f in [f for f in self.inflight if f.status == "finished"]:
                    self._collect(f)  # gather what is done before a worker restart loses it
                self._stop_dask(dfut)
            else:
                fut.cancel()
        if self.kind == "process":
            _kill_process_pool(self.pool)
            self._recover([], killed=True)
        # stopping and restarting workers took time the variants still in flight must not be charged for
        now = time.monotonic()
        for f, (b, _, iso, d) in list(self.inflight.items()):
            self.inflight[f] = (b, now, iso, d)

    def _stop_dask(self, dfut) -> None:
        """Cancel a hung task and end its worker process (the nanny starts a fresh one); wait until it is back."""
        client = self.pool._client
        try:
            before = set(client.scheduler_info()["workers"])
            where = client.run_on_scheduler(_processing_on, key=dfut.key)
            busy = [where] if where else []
            client.cancel([dfut], force=True)
            if not busy:
                return
            # Client.restart_workers waits politely for the hung thread; ending the process is immediate
            client.run(_exit_worker, workers=busy, wait=False)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                now = set(client.scheduler_info()["workers"])
                if not (set(busy) & now) and len(now) >= len(before):
                    break
                time.sleep(0.2)
            _warm(self.pool, "dask", self.workers)
        except Exception:  # noqa: BLE001 - best effort: the variant is already recorded as failed
            pass

    def _abort(self) -> None:
        for fut in self.inflight:
            fut.cancel()
        if self.kind == "process":
            _kill_process_pool(self.pool)
        elif self.kind == "dask":
            try:
                self.pool._client.cancel([d for *_, d in self.inflight.values() if d is not None], force=True)
            except Exception:  # noqa: BLE001 - best effort while interrupting
                pass
        elif hasattr(self.pool, "shutdown"):
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.inflight.clear()


def _died(e: BaseException, kind: str) -> str:
    where = "Dask worker" if kind == "dask" else "worker process"
    return (f"WorkerDied: the {where} died while fitting this variant ({type(e).__name__}: {e}); the other "
            "variants were fitted")
