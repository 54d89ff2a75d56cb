"""Source addresses: what a log puts where an address goes is not always one.

CloudTrail writes `AWS Internal` or a service principal (`secretsmanager.amazonaws.com`)
when AWS made the call; Azure writes `<Redacted>`; GCP writes `private` or
`gce-internal-ip`. Only addresses go to `source_ip` (so "new source" logic never takes a
service for a network); what stood there instead goes to the event's note.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from pipeline.record import clip


@lru_cache(maxsize=16384)
def split_address(value: str | None) -> tuple[str | None, str | None]:
    """(the address, None) or (None, a note saying what stood there instead); a port or
    an IPv6 zone after an address is dropped.

    >>> split_address("10.1.2.3"), split_address("AWS Internal")
    (('10.1.2.3', None), (None, 'source: AWS Internal (not an address)'))
    >>> split_address("secretsmanager.amazonaws.com")[1]
    'source: secretsmanager.amazonaws.com (a service, not an address)'
    >>> split_address("203.0.113.9:51234"), split_address("<Redacted>")[1]
    (('203.0.113.9', None), 'source address redacted in the log')
    """
    if not value:
        return None, None
    address = _address(value)
    if address is not None:
        return address, None
    if value.lower() in ("<redacted>", "redacted"):
        return None, "source address redacted in the log"
    if value.endswith((".amazonaws.com", ".googleapis.com", ".azure.com")):
        return None, f"source: {clip(value, 80)} (a service, not an address)"
    return None, f"source: {clip(value, 80)} (not an address)"


def _address(value: str) -> str | None:
    host = value
    if value.startswith("[") and "]" in value:  # [v6]:port
        host = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        host = value.split(":", 1)[0]
    host = host.split("%", 1)[0]  # a v6 zone
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return value if host == value else host
