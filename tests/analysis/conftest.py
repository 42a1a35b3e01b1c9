"""One real Prometheus for the session, scraping an exporter with per-slot metrics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .prometheus_server import Exporter, Prometheus, prometheus_scraping, slot_metrics

# The new release (green, the canary) errs 25 times as often as the previous one (blue).
ERROR_RATIO = {"blue": 0.01, "green": 0.25}
REQUESTS = {"blue": 4000, "green": 1000}


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    exporter = Exporter()
    exporter.set(slot_metrics(ERROR_RATIO, REQUESTS))
    with prometheus_scraping(exporter, tmp_path_factory.mktemp("prometheus")) as server:
        server.wait_for_points('app_error_ratio{slot="green"}', 3)
        yield server
