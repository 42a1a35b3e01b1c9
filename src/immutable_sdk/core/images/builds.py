"""Images built in the background while the fleets whose images are ready roll out.

``Builds`` starts the plan's builds on up to ``parallelism`` threads of their own and is the
artifact mapping the fleets read: ``builds[image]`` returns at once for an image that needed no
build or whose build finished, and otherwise waits for that image's build alone. So independent
images build side by side, a fleet starts as soon as its own image exists (whatever else is
still building), and a failed build fails only the fleets that use its image (their results
carry its error; the orchestrator blocks their dependants as for any failed fleet).

On the virtual clock each build thread is a participant (``reserve``), and a fleet waiting for
a build sleeps on the clock between looks (``WAIT_POLL``): time moves for the build's waits,
and the fleet starts at most one poll after its image exists.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future

from ...clock import Clock, Reservation, reserve
from ...errors import BuildError, ImmutableSdkError
from ...plugin import Artifact
from ..tick.horizon import Suspended

WAIT_POLL = 1.0  # seconds between looks at a build a fleet waits for


class Builds(Mapping[str, Artifact]):
    """The artifacts of an apply: ``ready`` ones, and ``names`` built by ``build`` meanwhile."""

    def __init__(
        self,
        ready: Mapping[str, Artifact],
        names: Sequence[str],
        build: Callable[[str], Artifact],
        clock: Clock,
        parallelism: int,
    ) -> None:
        self._ready = dict(ready)
        self._clock = clock
        self._build = build
        self._order = list(dict.fromkeys(names))
        self._futures: dict[str, Future[Artifact]] = {n: Future() for n in self._order}
        self._queue = list(self._order)
        self._lock = threading.Lock()
        # Every worker's place is held before any starts: time waits until all have begun.
        reservations = [reserve(clock) for _ in range(min(max(parallelism, 1), len(names)))]
        for i, reservation in enumerate(reservations):
            try:
                threading.Thread(
                    target=self._worker, args=(reservation,), name=f"build-{i}", daemon=True
                ).start()
            except BaseException:
                for r in reservations[i:]:
                    r.cancel()
                raise

    def _worker(self, reservation: Reservation) -> None:
        with reservation:
            while True:
                with self._lock:
                    if not self._queue:
                        return
                    name = self._queue.pop(0)
                future = self._futures[name]
                try:
                    future.set_result(self._build(name))
                except (ImmutableSdkError, Suspended) as exc:  # Suspended: built by later ticks
                    future.set_exception(exc)
                except Exception as exc:  # a builder's bug fails its image, not the apply
                    future.set_exception(BuildError(name, f"the builder raised {exc!r}"))
                except BaseException as exc:  # interrupted: whoever waits sees it
                    future.set_exception(exc)
                    raise

    def __getitem__(self, image: str) -> Artifact:
        if image in self._ready:
            return self._ready[image]
        future = self._futures.get(image)
        if future is None:
            raise KeyError(image)
        while not future.done():  # on the clock: the build's own waits move virtual time
            self._clock.sleep(WAIT_POLL)
        return future.result()

    def __iter__(self) -> Iterator[str]:
        return iter([*self._ready, *(n for n in self._order if n not in self._ready)])

    def __len__(self) -> int:
        return len(set(self._ready) | set(self._order))

    def wait(self) -> tuple[dict[str, Artifact], dict[str, Exception]]:
        """Wait for every build: (artifacts built, errors of the builds that failed)."""
        built: dict[str, Artifact] = {}
        failed: dict[str, Exception] = {}
        for name in self._order:
            try:
                built[name] = self[name]
            except Exception as exc:
                failed[name] = exc
        return built, failed
