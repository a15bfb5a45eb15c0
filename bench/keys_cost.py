"""What checking a Warden key adds to the hot path, measured in-process (CPU time, so a busy machine disturbs it
less than a load test): the ingress's admission of one request holding its provider key (passthrough) against one
holding a Warden key (keyed hash, dictionary lookup, stored credential injected), with N keys issued.

    .venv/bin/python bench/keys_cost.py --keys 10000 --rounds 200000

See bench/README.md.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plumbing.keyring import Keyring, new_master_key
from schemas.keys import KeySecret, WardenKey
from schemas.profiles import ProfileSpec, new_profile
from services.ingress.admission import Gate
from services.ingress.headers import upstream_headers
from services.ingress.keys import KeyIndex
from services.ingress.routing import parse
from services.keyring.tokens import display_prefix, new_secret


class Keys:
    """A stand-in for the replicated map: the index only reads ``values`` and listens."""

    def __init__(self, keys: list[WardenKey]) -> None:
        self._keys = keys

    def values(self) -> list[WardenKey]:
        return self._keys

    def listen(self, _listener) -> None:
        return None


def per_call_us(fn, rounds: int) -> float:
    began = time.process_time()
    for _ in range(rounds):
        fn()
    return (time.process_time() - began) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=200_000)
    args = parser.parse_args()
    keyring = Keyring.from_setting(new_master_key())
    assert keyring is not None
    profile = new_profile(ProfileSpec(name="bench", auth="passthrough"))
    profile = profile.model_copy(update={"credentials": {"openai": keyring.encrypt("sk-bench-not-a-real-key")}})
    now = datetime.now(UTC)
    issued, secret = [], ""
    for n in range(args.keys):
        secret = new_secret()
        stored = KeySecret(digest=keyring.digest(secret).hex(), prefix=display_prefix(secret))
        issued.append(
            WardenKey(
                id=str(uuid.uuid4()),
                profile_id=profile.id,
                agent_id=f"agent-{n}",
                created_at=now,
                updated_at=now,
                secrets=[stored],
            )
        )
    gate = Gate(
        lambda ref: profile if ref in (profile.id, "default") else None,
        KeyIndex(Keys(issued), keyring),
        keyring,
        lambda _: None,
    )
    route = parse("/v1/openai/chat/completions", lambda _: frozenset({"chat"}))
    assert route is not None
    base = [(b"host", b"127.0.0.1:9000"), (b"content-type", b"application/json"), (b"x-archestra-agent-id", b"a")]
    with_provider_key = [*base, (b"authorization", b"Bearer sk-bench-not-a-real-key")]
    with_warden_key = [*base, (b"authorization", f"Bearer {secret}".encode())]
    assert gate.admit(route, "openai", with_warden_key, b"", now).credential is not None

    def passthrough() -> None:
        gate.admit(route, "openai", with_provider_key, b"", now)
        upstream_headers(with_provider_key)

    def keyed() -> None:
        admitted = gate.admit(route, "openai", with_warden_key, b"", now)
        upstream_headers(with_warden_key, admitted.credential)

    plain = per_call_us(passthrough, args.rounds)
    warden = per_call_us(keyed, args.rounds)
    print(f"{args.keys} keys issued, {args.rounds} rounds each (CPU time per request)")
    print(f"  provider key (passthrough): {plain:.2f} us")
    print(f"  Warden key:                 {warden:.2f} us  (+{warden - plain:.2f} us)")


if __name__ == "__main__":
    main()
