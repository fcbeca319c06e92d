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
        self.inflight: dict = {}  # cf future -> (variants, start time, isolated, dask future)
        workers = n_workers(executor)
        # with a timeout, no more futures than workers: a submitted variant starts at once, so its clock is true
        self.window = workers if timeout else 2 * workers

    # ------------------------------------------------------------------ submission
    def _submit(self, batch: list[Variant], isolated: bool) -> None:
        tasks = [self.make_task(v) for v in batch]
        dfut = None
        if self.kind == "dask":
            dfut = self.pool._client.submit(run_batch, tasks, self.common, pure=False)
            fut = self.pool._wrap_future(dfut)
        else:
            fut = self.pool.submit(run_batch, tasks, self.common)
        self.inflight[fut] = (batch, time.monotonic(), isolated, dfut)

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
                done, _ = cf.wait(list(self.inflight), timeout=_POLL, return_when=cf.FIRST_COMPLETED)
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

    def _collect(self, fut) -> list:
        """Hand over a finished future's outputs; return it as lost if its worker (pool) broke."""
        batch, _, isolated, _ = self.inflight.pop(fut)
        try:
            outs = fut.result()
        except cf.process.BrokenProcessPool as e:
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
            fut.cancel()
            if self.kind == "dask":
                self._stop_dask(dfut)
        if self.kind == "process":
            _kill_process_pool(self.pool)
            self._recover([], killed=True)

    def _stop_dask(self, dfut) -> None:
        client = self.pool._client
        try:
            busy = [w for w, keys in client.processing().items() if dfut.key in keys]
            client.cancel([dfut], force=True)
            if busy:
                client.restart_workers(busy, raise_for_error=False)
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
