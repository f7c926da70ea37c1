# The Python half of `anycode-bench`'s peers section (run in the benchmark's own
# venv, with terminado and websockets from PyPI):
#
#   peers.py terminado <container>     serves terminado on a loopback port; each
#                                      socket gets `docker exec -it <container> bash`;
#                                      prints the port, then serves until killed
#   peers.py flood <url> <proto> <bytes>
#                                      one flood through a standard Python
#                                      `websockets` client; prints one JSON line
#   peers.py echo <url> <proto> <keys>
#                                      keystroke echo round trips; one JSON line
#
# <proto> is `anycode` (binary frames both ways) or `terminado` (JSON text frames
# `["stdin", s]` / `["stdout", s]`). The client is what a script author would write:
# library defaults, no flow-control acks. The bearer token, if any, comes in the
# environment (ANYCODE_BENCH_TOKEN), not on the command line.
import asyncio
import hashlib
import json
import os
import statistics
import sys
import time

LINE = "AnyCode flood line 0123456789 abcdefghijklmnopqrstuvwxyz"


def serve_terminado(container):
    import tornado.ioloop
    import tornado.netutil
    import tornado.web
    import tornado.httpserver
    from terminado import TermSocket, UniqueTermManager

    argv = ["docker", "exec", "-it", "-e", "TERM=xterm-256color", container, "bash"]
    manager = UniqueTermManager(shell_command=argv)
    app = tornado.web.Application([(r"/websocket", TermSocket, {"term_manager": manager})])
    socks = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(socks)
    print(socks[0].getsockname()[1], flush=True)
    tornado.ioloop.IOLoop.current().start()


class Conn:
    """One terminal socket, with the protocol's framing hidden."""

    def __init__(self, ws, proto):
        self.ws = ws
        self.proto = proto

    async def send(self, text):
        if self.proto == "anycode":
            await self.ws.send(text.encode())
        else:
            await self.ws.send(json.dumps(["stdin", text]))

    async def recv(self):
        """The next output bytes (b"" for frames that carry none)."""
        msg = await self.ws.recv()
        if self.proto == "anycode":
            return msg if isinstance(msg, bytes) else b""
        m = json.loads(msg)
        return m[1].encode() if m[0] == "stdout" else b""


async def connect(url, proto, token):
    from websockets.asyncio.client import connect as ws_connect

    headers = {"Authorization": f"Bearer {token}"} if token else None
    ws = await ws_connect(url, additional_headers=headers)
    return Conn(ws, proto)


async def drain(conn, secs):
    try:
        while True:
            await asyncio.wait_for(conn.recv(), secs)
    except asyncio.TimeoutError:
        pass


def expected(n):
    # `yes LINE | head -c n` through a TTY: \n becomes \r\n (onlcr).
    unit = LINE + "\n"
    text = (unit * (n // len(unit) + 1))[:n]
    return hashlib.sha256(text.replace("\n", "\r\n").encode()).hexdigest()


async def flood(url, proto, n, token):
    conn = await connect(url, proto, token)
    await drain(conn, 0.5)
    # The typed line's echo reads RE%sDY and DO%sE; only the output has the words.
    # Echo is off for the flood, so what follows READY is the flood, then DONE.
    await conn.send(
        f"stty -echo; printf 'RE%sDY' A; read -r -n1 _; stty echo; yes '{LINE}' | head -c {n}; printf 'DO%sE' N\r"
    )
    got = bytearray()
    while b"READY" not in got:
        got += await asyncio.wait_for(conn.recv(), 20)
    got = bytearray(got[got.index(b"READY") + 5 :])
    frames = []
    start = time.perf_counter()
    await conn.send("g")
    while True:
        b = await asyncio.wait_for(conn.recv(), 60)
        if b:
            frames.append(len(b))
            got += b
            # The marker may straddle two frames.
            if b"DONE" in got[-(len(b) + 4) :]:
                break
    secs = time.perf_counter() - start
    data = bytes(got[: got.rindex(b"DONE")])
    await conn.ws.close()
    print(
        json.dumps(
            {
                "secs": secs,
                "bytes": len(data),
                "exact": hashlib.sha256(data).hexdigest() == expected(n),
                "frames": len(frames),
                "median_frame": statistics.median(frames) if frames else 0,
            }
        )
    )


async def echo(url, proto, keys, token):
    conn = await connect(url, proto, token)
    await drain(conn, 0.5)
    await conn.send("\x15")
    await drain(conn, 0.3)
    rtts = []
    for i in range(keys):
        key, want = ("a", b"a") if i % 2 == 0 else ("\x7f", b"\x08")
        t0 = time.perf_counter()
        await conn.send(key)
        got = b""
        while want not in got:
            got += await asyncio.wait_for(conn.recv(), 5)
        rtts.append((time.perf_counter() - t0) * 1000)
    await conn.send("\x15")
    await conn.ws.close()
    print(json.dumps({"echo_ms": rtts}))


def main():
    cmd = sys.argv[1]
    if cmd == "terminado":
        serve_terminado(sys.argv[2])
    elif cmd == "flood":
        url, proto, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
        asyncio.run(flood(url, proto, n, os.environ.get("ANYCODE_BENCH_TOKEN")))
    elif cmd == "echo":
        url, proto, keys = sys.argv[2], sys.argv[3], int(sys.argv[4])
        asyncio.run(echo(url, proto, keys, os.environ.get("ANYCODE_BENCH_TOKEN")))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
