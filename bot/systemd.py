"""Telling systemd how the service is doing: the ``sd_notify`` protocol, for a unit with ``Type=notify``.

systemd passes the path of a datagram socket in ``$NOTIFY_SOCKET``; the service sends it lines such as
``READY=1`` (``systemctl start`` returns only then: once the index is loaded and the bot answers),
``STOPPING=1`` and ``STATUS=...`` (shown by ``systemctl status``). Outside systemd the variable is unset and
:func:`notify` does nothing. The protocol is a few lines (systemd's ``sd_notify(3)``), so no library is
needed for it.
"""

from __future__ import annotations

import logging
import os
import socket

__all__ = ["notify"]

logger = logging.getLogger(__name__)


def notify(*fields: str) -> bool:
    """Send ``fields`` (``"READY=1"``, ``"STATUS=..."``) to systemd; False when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket: a leading NUL byte instead of "@"
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode("utf-8"))
    except OSError as error:
        logger.warning("could not notify systemd (%s): %s", address.lstrip("\0"), error)
        return False
    return True
