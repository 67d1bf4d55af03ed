"""Reads socket options of another process's sockets: the gateway's own accepted and upstream
sockets, not a copy. Each TCP socket of the process is found through /proc/<pid>/fd and
/proc/<pid>/net/tcp, duplicated into this process with pidfd_getfd(2) (Linux 5.6; needs ptrace
access to the process, i.e. root or the same user), and asked with getsockopt.
"""

from __future__ import annotations

import ctypes
import os
import re
import socket
from dataclasses import dataclass

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_PIDFD_OPEN = 434
_SYS_PIDFD_GETFD = 438


@dataclass
class TCPSocket:
    local_port: int
    remote_port: int
    state: int  # /proc/net/tcp state: 1 established, 10 listen
    nodelay: bool
    debug: bool  # SO_DEBUG, which needs CAP_NET_ADMIN


def _socket_inodes(pid: int) -> dict[int, int]:
    """inode -> fd number for every socket the process holds."""
    inodes = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m:
            inodes[int(m.group(1))] = int(name)
    return inodes


def _tcp_table(pid: int) -> dict[int, tuple[int, int, int]]:
    """inode -> (local port, remote port, state) from the process's network namespace."""
    table = {}
    for path in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):
        try:
            lines = open(path).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
            table[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), int(state, 16))
    return table


def tcp_sockets(pid: int) -> list[TCPSocket]:
    pidfd = _libc.syscall(_SYS_PIDFD_OPEN, pid, 0)
    if pidfd < 0:
        raise OSError(ctypes.get_errno(), f"pidfd_open({pid})")
    try:
        inodes = _socket_inodes(pid)
        table = _tcp_table(pid)
        found = []
        for inode, (local, remote, state) in table.items():
            if inode not in inodes:
                continue
            fd = _libc.syscall(_SYS_PIDFD_GETFD, pidfd, inodes[inode], 0)
            if fd < 0:
                raise OSError(ctypes.get_errno(), f"pidfd_getfd({pid}, {inodes[inode]})")
            try:
                s = socket.socket(fileno=fd)
                try:
                    nodelay = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
                    debug = s.getsockopt(socket.SOL_SOCKET, socket.SO_DEBUG) != 0
                finally:
                    s.detach()
            finally:
                os.close(fd)
            found.append(TCPSocket(local, remote, state, nodelay, debug))
        return found
    finally:
        os.close(pidfd)
