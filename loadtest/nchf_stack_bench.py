"""Which HTTP/2 server stack for the Nchf front end: ``python -m loadtest.nchf_stack_bench``.

The same trivial Nchf-sized exchange (a ~400-byte JSON POST parsed, a
~250-byte JSON answer) served by (a) protocols.nchf.transport (the h2 and h11
state machines under our asyncio protocol) and (b) hypercorn with an ASGI
callable (hypercorn drives the same h2 library), each in a child process on
uvloop, driven by the load generator's HTTP/2 client (loadtest.nchf_wire)
with a fixed number of requests in flight. Reported: answers per second and
the server process's CPU per answer (utime + stime from /proc), best of
``--repeat`` runs. hypercorn is not a dependency: ``pip install hypercorn``
to measure it (skipped otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import socket
import time
from typing import Any

from loadtest.nchf_wire import H2Client, connect
from loadtest.serverproc import cpu_of

REQUEST = json.dumps(
    {
        "nfConsumerIdentification": {"nodeFunctionality": "SMF", "nFName": "smf-bench"},
        "invocationTimeStamp": "2026-01-01T10:00:00.000Z",
        "invocationSequenceNumber": 1,
        "multipleUnitUsage": [
            {
                "ratingGroup": rg,
                "requestedUnit": {},
                "usedUnitContainer": [{"localSequenceNumber": 1, "totalVolume": 500000}],
            }
            for rg in (10, 20)
        ],
    }
).encode()
ANSWER = json.dumps(
    {
        "invocationTimeStamp": "2026-01-01T10:00:00.001Z",
        "invocationSequenceNumber": 1,
        "multipleUnitInformation": [
            {"resultCode": "SUCCESS", "ratingGroup": rg, "grantedUnit": {"totalVolume": 10000}}
            for rg in (10, 20)
        ],
    }
).encode()
PATH = b"/nchf-convergedcharging/v3/chargingdata/0123456789abcdef01234567/update"


def _serve_ours(port: int) -> None:
    from protocols.nchf.transport import HttpServer, Request, Response

    async def handler(req: Request) -> Response:
        json.loads(req.body)
        return Response(200, ANSWER)

    async def main() -> None:
        server = HttpServer(handler)
        await server.listen(["127.0.0.1"], port, reuse_port=False)
        await asyncio.Event().wait()

    import uvloop

    uvloop.run(main())


def _serve_hypercorn(port: int) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        json.loads(body)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": ANSWER})

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.loglevel = "WARNING"
    config.keep_alive_max_requests = 10**9  # default 1000: GOAWAY, then a new connection

    import uvloop

    asgi: Any = app  # hypercorn's own ASGI types, when it is installed
    uvloop.run(serve(asgi, config))


async def _drive(port: int, seconds: float, inflight: int, connections: int) -> int:
    clients = [await connect("127.0.0.1", port) for _ in range(connections)]
    done = 0
    stop_at = time.monotonic() + seconds

    def again(client: H2Client) -> None:
        def answer(status: int, location: bytes, body: bytes) -> None:
            nonlocal done
            if status == 200:
                done += 1
            if status and time.monotonic() < stop_at:
                client.post(PATH, REQUEST, answer)

        client.post(PATH, REQUEST, answer)

    for i in range(inflight):
        again(clients[i % connections])
    await asyncio.sleep(seconds + 0.5)
    for c in clients:
        if c.terminated is not None:
            print("GOAWAY from the server:", c.terminated)
        c.close()
    return done


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(stack: str, seconds: float, inflight: int, connections: int) -> tuple[float, float]:
    """(answers per second, server CPU µs per answer) for one stack."""
    port = _free_port()
    target = _serve_ours if stack == "ours" else _serve_hypercorn
    proc = mp.get_context("spawn").Process(target=target, args=(port,), daemon=True)
    proc.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or not proc.is_alive():
                    raise RuntimeError(f"{stack} server did not start") from None
                time.sleep(0.1)
        time.sleep(0.3)
        assert proc.pid is not None
        before = cpu_of(proc.pid)
        began = time.perf_counter()
        done = asyncio.run(_drive(port, seconds, inflight, connections))
        wall = time.perf_counter() - began
        cpu = cpu_of(proc.pid) - before
    finally:
        proc.terminate()
        proc.join(5)
    return done / wall, cpu * 1e6 / max(done, 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.nchf_stack_bench")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--inflight", type=int, default=32)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    stacks = ["ours"]
    try:
        import hypercorn  # noqa: F401

        stacks.append("hypercorn")
    except ImportError:
        print("hypercorn not installed: measuring protocols.nchf.transport only")
    for stack in stacks:
        runs = [
            measure(stack, args.seconds, args.inflight, args.connections)
            for _ in range(args.repeat)
        ]
        rate = max(r for r, _ in runs)
        cpu = min(c for _, c in runs)
        print(
            f"{stack:10s} {rate:8,.0f} answers/s   "
            f"server CPU {cpu:6.1f} µs per answer (best of {len(runs)})"
        )


if __name__ == "__main__":
    main()
