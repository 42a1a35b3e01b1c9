"""A moto server on loopback: the embedded AWS emulator behind ``--sandbox`` and the tests.

Always binds 127.0.0.1 (moto's own default is 0.0.0.0) on a free port chosen by the kernel.
"""

from __future__ import annotations

import logging
import urllib.request
from types import TracebackType
from typing import Any


class Emulator:
    """Start, reset and stop an in-process moto server over HTTP on 127.0.0.1."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from ..aws.loopback import is_loopback_host

        if not is_loopback_host(host):
            raise ValueError("the emulator binds loopback only")
        self._host = host
        self._port = port
        self._server: Any = None
        self._moto_port_before: str | None = None

    def start(self) -> Emulator:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:  # pragma: no cover - depends on the install
            from ..errors import UsageError

            raise UsageError(
                "the sandbox needs moto's server: pip install 'immutable-sdk[sandbox]'"
            ) from exc
        from . import moto_fixes

        moto_fixes.install()
        # werkzeug logs every request at INFO, and the traceback of every request moto fails
        # on at ERROR: the client gets the answer (an HTTP 500, made readable by the SDK's
        # error handling), so the emulator's thread writes nothing to this process's stderr.
        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        # moto's state machine interpreter logs every failed state with its whole parse tree:
        # an execution's failure is in its history (DescribeExecution), as on AWS
        logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
        self._server = ThreadedMotoServer(ip_address=self._host, port=self._port, verbose=False)
        self._server.start()
        # A connection the client dropped (a killed process, a timed-out request) makes the
        # server's socketserver print a traceback to stderr, under the sandbox user's command
        # output; it goes to the emulator's debug log instead.
        self._server._server.handle_error = _dropped_request
        self.enable_step_functions()
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def reset(self) -> None:
        """Forget every resource (moto's reset API): a clean account, in milliseconds."""
        self._post("/moto-api/reset")

    def enable_step_functions(self) -> None:
        """Have moto run state machines for real (Wait, Map, SQS ``waitForTaskToken`` tasks).

        Its service integrations call back into the emulator at ``localhost:$MOTO_PORT``, read
        when an execution starts, in the process that runs the emulator: that is this one.
        """
        import os

        # moto's accounts are per process, whichever of its servers serves them: the port of
        # any emulator running here reaches them; a stopped one's gives its predecessor's back
        self._moto_port_before = os.environ.get("MOTO_PORT")
        os.environ["MOTO_PORT"] = self.url.rsplit(":", 1)[1]
        self._post("/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})

    def _post(self, path: str, body: dict[str, Any] | None = None) -> None:
        import json

        data = json.dumps(body).encode() if body is not None else b""
        req = urllib.request.Request(f"{self.url}{path}", method="POST", data=data)
        # straight to loopback: never through a proxy the environment names (urlopen would)
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        # a reset drops every resource of the account: on a loaded machine, with the state of
        # a long test to drop, it took over 30 s once (a whole test suite on 2 cores)
        with direct.open(req, timeout=120) as resp:
            resp.read()

    def stop(self) -> None:
        if self._server is not None:
            import os

            if os.environ.get("MOTO_PORT") == self.url.rsplit(":", 1)[1]:
                if self._moto_port_before is None:
                    os.environ.pop("MOTO_PORT", None)
                else:
                    os.environ["MOTO_PORT"] = self._moto_port_before
            self._server.stop()
            self._server = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _dropped_request(request: Any, client_address: Any) -> None:
    logging.getLogger("immutable_sdk.emulator").debug(
        "request from %s failed in the emulator's server", client_address, exc_info=True
    )
