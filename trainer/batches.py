"""Training batches: which windows step k reads, and getting them to the device off the critical path.

Step k's batch depends on (data_seed, k) alone (`batch_rng`), not on how many batches were drawn
before it: a run resumed from a checkpoint at step k reads exactly the batches the uninterrupted run
would have, and a background thread may draw ahead without changing what any step sees.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from types import TracebackType

import numpy as np
import torch

from trainer.data import Corpus

PREFETCH_DEPTH = 2  # batches drawn ahead: one being copied, one ready


def batch_rng(data_seed: int, step: int) -> np.random.Generator:
    """The generator that draws step `step`'s windows (NumPy's SeedSequence mixes both integers)."""
    return np.random.default_rng((data_seed, step))


class Prefetcher:
    """Draws the batches of steps [start, stop) on a background thread, `depth` ahead of the loop.

    The thread slices the windows out of the corpus and, for a CUDA device, copies them into pinned
    host memory, so that `next()` only issues a non-blocking host-to-device copy and the GPU never
    waits for the host to gather tokens. Use it as a context manager: leaving the block (a finished
    run, a stop request, an error) stops the thread. An error in the thread is raised by `next()`.
    """

    def __init__(
        self,
        corpus: Corpus,
        data_seed: int,
        batch_size: int,
        context_length: int,
        device: torch.device,
        *,
        start: int = 0,
        stop: int,
        depth: int = PREFETCH_DEPTH,
    ) -> None:
        self._corpus, self._data_seed = corpus, data_seed
        self._shape = (batch_size, context_length)
        self._device = device
        self._pin = device.type == "cuda"
        self._steps = range(start, stop)
        self._ready: queue.Queue[tuple[torch.Tensor, torch.Tensor] | BaseException] = queue.Queue(depth)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._fill, name="batch-prefetch", daemon=True)
        self._taken = 0

    def __enter__(self) -> Prefetcher:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closed.set()
        while self._thread.is_alive():  # unblock a put() waiting on a full queue
            try:
                self._ready.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.05)

    def _fill(self) -> None:
        try:
            for step in self._steps:
                x, y = self._corpus.sample_batch(batch_rng(self._data_seed, step), *self._shape)
                tensors = torch.from_numpy(x), torch.from_numpy(y)
                if self._pin:
                    tensors = tensors[0].pin_memory(), tensors[1].pin_memory()
                if not self._put(tensors):
                    return
        except BaseException as exc:  # handed to the training loop, which raises it
            self._put(exc)

    def _put(self, item: tuple[torch.Tensor, torch.Tensor] | BaseException) -> bool:
        while not self._closed.is_set():
            try:
                self._ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next step's inputs and targets on the device, each (B, T) int64."""
        if self._taken == len(self._steps):
            raise IndexError(f"all {len(self._steps)} batches of steps {self._steps} were taken")
        self._taken += 1
        item = self._ready.get()
        if isinstance(item, BaseException):
            raise item
        x, y = item
        return x.to(self._device, non_blocking=True), y.to(self._device, non_blocking=True)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _ in self._steps:
            yield self.next()
