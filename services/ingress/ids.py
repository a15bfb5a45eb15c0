"""Interaction ids: random version-4 UUIDs, made without a system call per request.

``uuid.uuid4()`` reads the OS's random source on every call, a measurable share of the proxy's time under load. Ids
need to be unique, not unpredictable: a Mersenne Twister seeded from the OS's random source per process gives that.
"""

from __future__ import annotations

import random

_random = random.Random()  # seeded from os.urandom
_VERSION_4 = (0x4 << 76) | (0x2 << 62)
_CLEAR = ~((0xF << 76) | (0x3 << 62))


def new_interaction_id() -> str:
    # The text ``str(uuid.UUID(int=...))`` gives, written directly: building the UUID object costs more than the id.
    text = "%032x" % ((_random.getrandbits(128) & _CLEAR) | _VERSION_4)
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
