"""A real redis-server on loopback for the tests (installed by scripts/install.sh).

Each RedisServer runs its own process on a free port with no persistence; stop() and start()
again on the same port simulate an outage and a recovery."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

from prism_helpers import free_port


def redis_server_binary() -> Optional[str]:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)


class RedisServer:
    def __init__(self, directory: Path, password: str = "") -> None:
        self.directory = directory
        self.port = free_port()
        self.password = password
        self.proc: Optional[subprocess.Popen] = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "RedisServer":
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed: run scripts/install.sh")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.directory)]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.command("PING") in (b"+PONG", b"-NOAUTH Authentication required."):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def command(self, *parts: str) -> Optional[bytes]:
        """One command over RESP; the first line of the reply (or None when unreachable)."""
        payload = f"*{len(parts)}\r\n".encode()
        for part in parts:
            data = part.encode()
            payload += b"$" + str(len(data)).encode() + b"\r\n" + data + b"\r\n"
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                if self.password:
                    auth = f"*2\r\n$4\r\nAUTH\r\n${len(self.password)}\r\n{self.password}\r\n".encode()
                    sock.sendall(auth)
                    sock.recv(64)
                sock.sendall(payload)
                reply = b""
                while not reply.endswith(b"\r\n"):
                    piece = sock.recv(65536)
                    if not piece:
                        break
                    reply += piece
                return reply.split(b"\r\n")[0]
        except OSError:
            return None

    def keys(self, pattern: str = "*") -> list[str]:
        """KEYS, parsed (small test databases only)."""
        payload = f"*2\r\n$4\r\nKEYS\r\n${len(pattern)}\r\n{pattern}\r\n".encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            if self.password:
                sock.sendall(f"*2\r\n$4\r\nAUTH\r\n${len(self.password)}\r\n{self.password}\r\n".encode())
                sock.recv(64)
            sock.sendall(payload)
            time.sleep(0.05)
            data = sock.recv(1 << 20).decode()
        lines = data.split("\r\n")
        return [lines[i] for i in range(2, len(lines), 2) if lines[i - 1].startswith("$")]
