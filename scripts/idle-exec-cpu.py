#!/usr/bin/env python3
"""Idle CPU of dockerd + containerd (and its shims) with N idle containers, first
alone, then with an open attach stream to each, then with a long-running exec
stream to each as well (what AnyCode keeps per sandbox: the agent terminal's
attach and the relay's `docker exec`), then with every stream closed again.

Plain Docker API over the default socket, no AnyCode: it says whether open idle
streams cost dockerd/containerd CPU by themselves.

    python3 scripts/idle-exec-cpu.py [--n 100] [--secs 30] [--image IMAGE] [--exec CMD] [--settle S]

`--exec` is the exec's command line (default `cat`); AnyCode's relay is
`--image anycode-sandbox:latest --exec "node --max-old-space-size=32 /opt/anycode/bin/anycode-relay"`.

Every container it makes carries the label `anycode-idle-probe` and is removed at
the end (also on Ctrl-C).
"""
import argparse
import http.client
import json
import os
import socket
import sys
import time

SOCK = "/var/run/docker.sock"
LABEL = "anycode-idle-probe"
TICKS = os.sysconf("SC_CLK_TCK")


class Conn(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("localhost", timeout=60)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(SOCK)


def api(method, path, body=None):
    c = Conn()
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status >= 300:
        raise RuntimeError(f"{method} {path}: {r.status} {data[:200]!r}")
    return json.loads(data) if data else None


def hijack(path, body):
    """POSTs `path` with an Upgrade to a raw stream; returns the open socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)
    payload = json.dumps(body).encode() if body is not None else b""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode()
    s.sendall(head + payload)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError(f"{path}: closed during the upgrade")
        buf += chunk
    status = buf.split(b"\r\n", 1)[0]
    if b" 101 " not in status and b" 200 " not in status:
        raise RuntimeError(f"{path}: {status!r}")
    return s


def ticks():
    """CPU ticks of dockerd, containerd, and the shims, by name."""
    out = {"dockerd": 0, "containerd": 0, "containerd-shim": 0}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            stat = open(f"/proc/{p}/stat").read()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        f = stat[stat.rfind(")") + 2 :].split()
        t = int(f[11]) + int(f[12])
        if comm.startswith("containerd-shim"):
            out["containerd-shim"] += t
        elif comm.startswith("containerd"):
            out["containerd"] += t
        elif comm.startswith("dockerd"):
            out["dockerd"] += t
    return out


def window(label, secs):
    a, t0 = ticks(), time.monotonic()
    time.sleep(secs)
    b, el = ticks(), time.monotonic() - t0
    pct = {k: (b[k] - a[k]) / TICKS / el * 100 for k in a}
    total = sum(pct.values())
    parts = ", ".join(f"{k} {v:.2f}" for k, v in pct.items())
    print(f"{label:<44} {total:6.2f} % of a core ({parts})", flush=True)
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--secs", type=int, default=30)
    ap.add_argument("--image", default="debian:bookworm-slim")
    ap.add_argument("--exec", dest="exec_cmd", default="cat")
    ap.add_argument("--settle", type=int, default=3, help="seconds between opening the streams and the window")
    args = ap.parse_args()
    ids = []
    socks = []
    try:
        for i in range(args.n):
            c = api(
                "POST",
                f"/containers/create?name=anycode-idle-probe-{os.getpid()}-{i}",
                {"Image": args.image, "Cmd": ["bash"], "Tty": True, "OpenStdin": True, "Labels": {LABEL: "1"}},
            )
            ids.append(c["Id"])
            api("POST", f"/containers/{c['Id']}/start")
        print(f"{args.n} idle containers ({args.image}, bash on a TTY); windows of {args.secs} s", flush=True)
        time.sleep(5)
        window("containers only", args.secs)
        for cid in ids:
            socks.append(hijack(f"/containers/{cid}/attach?stream=1&stdin=1&stdout=1&stderr=1", None))
        time.sleep(3)
        window("+ an attach stream each", args.secs)
        for cid in ids:
            e = api("POST", f"/containers/{cid}/exec", {"Cmd": args.exec_cmd.split(), "AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Tty": False})
            socks.append(hijack(f"/exec/{e['Id']}/start", {"Detach": False, "Tty": False}))
        time.sleep(args.settle)
        window(f"+ an exec stream each ({args.exec_cmd.split()[0]}, stdin open)", args.secs)
        for s in socks:
            s.close()
        socks.clear()
        time.sleep(3)
        window("every stream closed", args.secs)
    finally:
        for s in socks:
            s.close()
        for cid in ids:
            try:
                api("DELETE", f"/containers/{cid}?force=1&v=1")
            except Exception as e:  # noqa: BLE001
                print(f"removing {cid[:12]}: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
