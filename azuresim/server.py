"""azuresim's HTTPS server: ARM, Log Analytics and metrics on one origin, plus
an admin API (`/_admin/...`) for faults, the call journal and the world.

TLS only, with a CA made by trustme and written to `<state-dir>/azuresim-ca.pem`,
so the real SDK clients run unchanged (`connection_verify=<ca>`); the TLS
handshake happens in each connection's thread so one slow client cannot stall
the others.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme
from pydantic import ValidationError

from stanch.azuresim import forensics
from stanch.azuresim.amend import Amendment, amend
from stanch.azuresim.arm import Request, Response, handle_arm, request_id
from stanch.azuresim.faults import Fault, FaultBook, Journal
from stanch.azuresim.monitor import handle_logs, handle_metrics_batch
from stanch.azuresim.persist import RESET_HINT, CorruptEstate, EstateFiles
from stanch.azuresim.rbac import authorize, caller, handle_rbac, is_rbac_path
from stanch.azuresim.state import ArmError, SimState
from stanch.azuresim.world import World

READS = ("GET", "HEAD")


class AzureSim:
    """azuresim. With a `state_dir`, the estate and the journal are kept there
    (azuresim.persist) and a new AzureSim on the same directory carries on
    from them; `reset=True` forgets them and starts from `world`. Without one,
    everything lives in a temporary directory and goes with `stop()`."""

    def __init__(
        self,
        world: World,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: Path | None = None,
        fault_seed: int | None = None,
        reset: bool = False,
    ) -> None:
        self._tmp = None if state_dir else tempfile.TemporaryDirectory(prefix="azuresim-")
        directory = state_dir or Path(self._tmp.name)  # type: ignore[union-attr]
        directory.mkdir(parents=True, exist_ok=True)
        self._files = EstateFiles(directory) if state_dir else None
        self._world = world.model_copy(deep=True)  # what a reset starts from
        self.faults = FaultBook(fault_seed)
        self.restored = False
        if self._files is not None:
            if reset:
                self._files.forget()
            saved = self._files.load_estate()
            try:
                self.state = SimState.restored(saved) if saved else SimState(world)
            except (ValueError, KeyError, TypeError) as e:
                raise CorruptEstate(
                    f"{self._files.estate}: not a saved estate ({e!r}); {RESET_HINT}"
                ) from None
            self.restored = saved is not None
            calls, seq = self._files.load_journal()
            self.journal = Journal(calls, seq, sink=self._files)
            self._save()
            ca = self._files.ca()
        else:
            self.state = SimState(world)
            self.journal = Journal()
            ca = trustme.CA()
        self.ca_file = directory / "azuresim-ca.pem"
        if self._files is None:
            ca.cert_pem.write_to_path(str(self.ca_file))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # Bound to another address (a host of its own on a network), it names that too.
        names = ["localhost", "127.0.0.1", "::1"]
        if host not in (*names, "0.0.0.0", ""):
            names.append(host)
        ca.issue_cert(*names).configure_cert(context)
        self._server = _TLSServer((host, port), _handler(self), context)
        self.host, self.port = host, self._server.server_address[1]
        self._thread: threading.Thread | None = None

    def _save(self) -> None:
        """Keep the estate after a change (under the state lock: one writer)."""
        if self._files is not None:
            with self.state.lock:
                self._files.save_estate(self.state.saved())

    def reset(self) -> None:
        """Back to the world it started from: resources as seeded, no locks, no
        faults, an empty journal (whose `seq` keeps counting)."""
        with self.state.lock:
            self.state.reseed(self._world.model_copy(deep=True))
            self._save()
        self.faults.clear()
        self.journal.clear()

    @property
    def estate_file(self) -> Path | None:
        return self._files.estate if self._files else None

    @property
    def url(self) -> str:
        # The certificate names localhost; clients must use a name it covers.
        host = "localhost" if self.host in ("127.0.0.1", "0.0.0.0") else self.host
        return f"https://{host}:{self.port}"

    def start(self) -> AzureSim:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="azuresim", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        if self._tmp:
            self._tmp.cleanup()

    # ---- dispatch ---------------------------------------------------------------

    def dispatch(self, req: Request, headers: dict[str, str]) -> Response | None:
        """None means: drop the connection without answering."""
        if req.path.startswith("/_admin"):
            return self._admin(req)
        rid = request_id()
        fault = self.faults.take(req.method, req.path)
        response: Response | None
        if fault is not None and fault.latency_ms:
            time.sleep(fault.latency_ms / 1000)
        if fault is not None and fault.drop:
            response = None
        elif fault is not None and fault.status:
            response = Response(fault.status, fault.body())
            if fault.retry_after is not None:
                response.headers["Retry-After"] = str(fault.retry_after)
        else:
            response = self._route(req, headers)
            if _is_mutation(req):
                self._save()
            if fault is not None and fault.drop_after:
                response = None
        self.journal.record(
            method=req.method,
            path=req.path,
            query=req.query,
            status=response.status if response else None,
            applied=response is not None or bool(fault and fault.drop_after),
            fault=fault.id if fault else None,
            request_id=rid,
            mutation=_is_mutation(req),
            body=req.body if req.method not in READS else None,
        )
        if response is not None:
            response.headers["x-ms-request-id"] = rid
            response.headers["x-ms-correlation-request-id"] = rid
        return response

    def _route(self, req: Request, headers: dict[str, str]) -> Response:
        if req.path.startswith(forensics.SAS_PREFIX):  # the SAS in the URL is the credential
            with self.state.lock:
                return Response(*forensics.serve_blob(self.state, req))
        if not headers.get("authorization", "").lower().startswith("bearer "):
            return _error(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        try:
            with self.state.lock:
                principal = caller(headers)
                if principal is not None:  # a guest's token: only what its roles grant
                    authorize(self.state, principal, req)
                if is_rbac_path(req.path) and "api-version" in req.query:
                    return handle_rbac(self.state, req)
                if req.path.lower().startswith("/v1/"):
                    return handle_logs(self.state, req)
                if re.fullmatch(r"/subscriptions/[^/]+/metrics:getbatch", req.path.lower()):
                    return handle_metrics_batch(self.state, req)
                return handle_arm(self.state, req)
        except ArmError as e:
            return _error(e.status, e.code, e.message)

    def _admin(self, req: Request) -> Response:
        route = (req.method, req.path.rstrip("/"))
        try:
            if route == ("GET", "/_admin/health"):
                return Response(200, {"status": "ok"})
            if route == ("GET", "/_admin/journal"):
                since = int(req.query.get("since", "0"))
                return Response(200, {"calls": self.journal.calls(since)})
            if route == ("DELETE", "/_admin/journal"):
                self.journal.clear()
                return Response(204)
            if route == ("POST", "/_admin/faults"):
                fault = Fault.model_validate(_admin_object(req))
                return Response(201, self.faults.add(fault).model_dump())
            if route == ("GET", "/_admin/faults"):
                return Response(200, {"faults": [f.model_dump() for f in self.faults.list()]})
            if route == ("DELETE", "/_admin/faults"):
                self.faults.clear()
                return Response(204)
            if route == ("GET", "/_admin/state"):
                with self.state.lock:
                    return Response(200, self.state.snapshot())
            if route == ("POST", "/_admin/world"):
                amendment = Amendment.model_validate(_admin_object(req))
                with self.state.lock:
                    amend(self.state, amendment)
                    self._save()
                return Response(204)
            if route == ("POST", "/_admin/reset"):
                self.reset()
                return Response(204)
        except ValidationError as e:
            return _error(400, "InvalidAdminRequest", _validation_message(req.path, e))
        except (ValueError, ArmError) as e:
            return _error(400, "InvalidAdminRequest", f"{req.path}: {e}")
        return _error(404, "NotFound", f"no admin route {req.method} {req.path}")


def _admin_object(req: Request) -> dict[str, Any]:
    if not isinstance(req.body, dict):
        kind = "no body" if req.body is None else f"a JSON {type(req.body).__name__}"
        raise ValueError(f"the body must be a JSON object, got {kind}")
    return req.body


def _validation_message(path: str, error: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors()
    ]
    return f"{path}: " + "; ".join(problems)


def _is_mutation(req: Request) -> bool:
    path = req.path.lower()
    if req.method in READS or path.startswith("/v1/") or path.endswith("metrics:getbatch"):
        return False
    # POSTs that only read: boot diagnostics' SAS URIs, a packet capture's status.
    return not path.endswith(("/retrievebootdiagnosticsdata", "/querystatus"))


def _error(status: int, code: str, message: str) -> Response:
    return Response(status, {"error": {"code": code, "message": message}})


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        context: ssl.SSLContext,
    ) -> None:
        self.context = context
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a client that does not speak TLS, or went away
        super().finish_request(tls, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # dropped connections are part of the job


def _handler(sim: AzureSim) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "azuresim"

        def _serve(self) -> None:
            split = urllib.parse.urlsplit(self.path)
            path = re.sub(r"/{2,}", "/", urllib.parse.unquote(split.path)) or "/"
            query = {k.lower(): v for k, v in urllib.parse.parse_qsl(split.query)}
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                self.close_connection = True  # the body's end is unknown
                self._send(_error(400, "InvalidRequestContent", "Content-Length is not a number."))
                return
            raw = self.rfile.read(length) if length > 0 else b""
            try:
                body = json.loads(raw) if raw.strip() else None
            except ValueError as e:  # not JSON, or not UTF-8
                self._send(
                    _error(400, "InvalidRequestContent", f"The request content is not JSON: {e}.")
                )
                return
            host = self.headers.get("Host") or f"localhost:{sim.port}"
            req = Request(self.command, path, query, body, f"https://{host}")
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                response = sim.dispatch(req, headers)
            except Exception as e:  # a bug answers 500, never a dropped connection
                response = _error(500, "InternalServerError", f"azuresim: {e!r}")
            if response is None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            self._send(response)

        def _send(self, response: Response) -> None:
            if isinstance(response.body, bytes):  # a blob: its route set its Content-Type
                payload = response.body
            else:
                payload = b"" if response.body is None else json.dumps(response.body).encode()
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if payload and "Content-Type" not in response.headers:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
