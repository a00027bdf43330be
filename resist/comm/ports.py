"""Free TCP ports on this host, for the rendezvous (``master_port``) of process groups started here."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free when asked (the OS picks it; it is released again at
    once, so another process may take it before the rendezvous binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
