"""Helpers of bench/load.sh (raw RESP, no redis module needed).

probe WRITE_HOST:PORT READ_HOST:PORT SECONDS PERIOD_MS TAG
    Every PERIOD_MS, PUT a fresh key at WRITE and poll GET at READ every 5 ms until it shows
    (at most 30 s); prints `probe n=<k> p50_ms=<> p90_ms=<> max_ms=<> missing=<>`.
flood HOST:PORT SECONDS
    Sends random-garbage UDP datagrams (100-1400 bytes) to a gossip port as fast as it can
    for SECONDS; prints `flood datagrams=<n> bytes=<b> rate_per_s=<r>`.
"""
import os
import random
import signal
import socket
import sys
import time


def stop_on_term():
    """SIGTERM ends the loop the way its deadline would (the summary is still printed)."""
    def handler(_sig, _frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def addr(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Conn:
    def __init__(self, where):
        self.s = socket.create_connection(addr(where), timeout=5)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def call(self, *args):
        self.s.sendall(resp(*args))
        line = self.line()
        if line.startswith(b"$"):
            n = int(line[1:])
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if line.startswith(b"-"):
            raise RuntimeError(line.decode())
        return line[1:]


def probe(write, read, seconds, period_ms, tag):
    w, r = Conn(write), Conn(read)
    delays = []
    end = time.monotonic() + float(seconds)
    stop_on_term()
    try:
        probe_loop(w, r, end, period_ms, tag, delays)
    except KeyboardInterrupt:
        pass
    missing = sum(1 for d in delays if d is None)
    delays = sorted(d for d in delays if d is not None)
    q = lambda p: delays[min(len(delays) - 1, int(p * len(delays)))] if delays else -1
    print("probe n=%d p50_ms=%.0f p90_ms=%.0f max_ms=%.0f missing=%d"
          % (len(delays), q(0.5), q(0.9), delays[-1] if delays else -1, missing), flush=True)


def probe_loop(w, r, end, period_ms, tag, delays):
    i = 0
    while time.monotonic() < end:
        i += 1
        key = "probe:%s:%d" % (tag, i)
        t0 = time.monotonic()
        w.call("PUT", key, "x")
        seen = False
        while time.monotonic() - t0 < 30:
            if r.call("GET", key) is not None:
                seen = True
                break
            time.sleep(0.005)
        delays.append((time.monotonic() - t0) * 1000 if seen else None)
        rest = period_ms / 1000 - (time.monotonic() - t0)
        if rest > 0:
            time.sleep(rest)


def flood(target, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pool = [os.urandom(random.randint(100, 1400)) for _ in range(256)]
    # a few start like gossip frames ("gK", version 1) so they reach the decoder's body
    for k in range(0, 256, 4):
        pool[k] = b"gK\x01" + pool[k][3:]
    n = nbytes = 0
    t0 = time.monotonic()
    end = t0 + float(seconds)
    dst = addr(target)
    stop_on_term()
    try:
        while time.monotonic() < end:
            for d in pool[:64]:
                try:
                    s.sendto(d, dst)
                    n += 1
                    nbytes += len(d)
                except OSError:
                    pass
            random.shuffle(pool)
    except KeyboardInterrupt:
        pass
    took = time.monotonic() - t0
    print("flood datagrams=%d bytes=%d rate_per_s=%.0f" % (n, nbytes, n / took), flush=True)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "probe":
        probe(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]), sys.argv[6])
    elif cmd == "flood":
        flood(sys.argv[2], float(sys.argv[3]))
    else:
        sys.exit(__doc__)
