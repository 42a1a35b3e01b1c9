"""Each journaled transition is notified once, whichever tick (a fresh process each) journals
it: a webhook receiver on 127.0.0.1 collects what the ``webhook`` notifier sends while a rolling
rollout with bakes and a pause advances tick by tick, and what it received is exactly what the
journal holds: one delivery per transition, no ``event_id`` twice, none lost."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from tests.engine.conftest import AMI_V1, AMI_V2
from tests.engine.crashkit import seed

from immutable_sdk.testing.endpoints import LoopbackHTTPServer

from .test_rolling_ticks import SPEC
from .tickkit import Ticker

pytestmark = pytest.mark.slow


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.keys: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.bodies.append(json.loads(body))
                receiver.keys.append(self.headers.get("Idempotency-Key", ""))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = LoopbackHTTPServer(Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def write(path: Path, ami: str, hook: str) -> Path:
    text = (
        SPEC.format(project="t5", ami=ami) + f"notifiers:\n  - {{type: webhook, url: '{hook}'}}\n"
    )
    path.write_text(text)
    return path


def test_each_transition_is_notified_once_across_ticks(
    aws: str, tmp_path: Path, receiver: Receiver
) -> None:
    (tmp_path / "seed.yaml").write_text(SPEC.format(project="t5", ami=AMI_V1))
    seed(aws, tmp_path / "seed.yaml")  # the network (in process, without the webhook plugin)
    here = tmp_path / "t5"
    here.mkdir()
    spec = write(here / "spec.yaml", AMI_V1, receiver.url)
    ticker = Ticker(aws, spec, env={"IMMUTABLE_SDK_DISABLE_PLUGIN_AUTOLOAD": "0"})
    assert ticker.until_settled("--yes").code == 0
    write(spec, AMI_V2, receiver.url)
    ticker.advance_to(None, at_least=60)
    assert ticker.until_settled("--yes").code == 0
    assert len(ticker.ticks) >= 8  # many processes journaled the two rollouts

    ids = [b["event_id"] for b in receiver.bodies]
    assert ids and all(ids), receiver.bodies[:3]
    assert [i for i, n in Counter(ids).items() if n > 1] == []  # nothing twice
    assert receiver.keys == ids  # the Idempotency-Key header is the event id

    with sqlite3.connect(here / "state.db") as db:
        journal = db.execute(
            "SELECT rollout, step_index, status FROM journal WHERE status != 'note'"
        ).fetchall()
    journaled = {f"{rollout}/{index}/{status}" for rollout, index, status in journal}
    steps = {i for i in journaled if i.rsplit("/", 1)[1] in ("started", "finished")}
    sent = {i for i in ids if i.rsplit("/", 1)[1] in ("started", "finished")}
    assert sent == steps  # every step transition journaled was notified, none more
    kinds = Counter(b["event"] for b in receiver.bodies)
    assert kinds["rollout_started"] == 2 and kinds["rollout_finished"] == 2, kinds
