"""``warden keys …``: the Warden keys admin API from the command line, and the master key's own tools.

``create``/``rotate`` print the key's secret once (it is never shown again); ``list`` shows prefixes. ``master-key``
prints a new value for ``WARDEN_MASTER_KEY``; ``reencrypt`` rewrites every stored provider credential under the
newest master key (after a new one was put first), so the old one can be dropped."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from warden.profiles_cli import add_connection_flags, client, print_answer


def run(args: argparse.Namespace) -> int:
    if args.action == "master-key":
        from plumbing.keyring import new_master_key

        print(new_master_key())
        return 0
    if args.action == "reencrypt":
        return _reencrypt()
    if args.action == "encrypt":
        return _encrypt()
    with client(args) as http:
        if args.action == "list":
            params = {"include_revoked": "true"} if args.all else {}
            if args.profile:
                params["profile_id"] = args.profile
            return print_answer(http.get("/api/keys", params=params))
        if args.action == "get":
            return print_answer(http.get(f"/api/keys/{args.id}"))
        if args.action == "create":
            spec: dict = {"profile_id": args.profile, "agent_id": args.agent}
            for field in ("user_id", "name", "expires_at"):
                if getattr(args, field):
                    spec[field] = getattr(args, field)
            if args.providers:
                spec["providers"] = args.providers.split(",")
            if args.models:
                spec["models"] = args.models.split(",")
            return print_answer(http.post("/api/keys", json=spec))
        if args.action == "rotate":
            return print_answer(http.post(f"/api/keys/{args.id}/rotate", json={"grace_seconds": args.grace_seconds}))
        return print_answer(http.delete(f"/api/keys/{args.id}"))


def _master_keyring() -> tuple[Any, Any] | None:
    """The settings and the keyring of ``WARDEN_MASTER_KEY``; None (said on stderr) when it is not set."""
    from plumbing.keyring import Keyring
    from plumbing.settings import CommonSettings
    from warden.startup import load_settings

    settings = load_settings(CommonSettings)
    if settings.master_key is None:
        print("WARDEN_MASTER_KEY is not set", file=sys.stderr)
        return None
    return settings, Keyring.from_setting(settings.master_key.get_secret_value())


def _encrypt() -> int:
    """A secret read from standard input, encrypted under the newest master key: a deployment's ``credential`` in
    the configuration file."""
    found = _master_keyring()
    if found is None:
        return 2
    _, keyring = found
    secret = sys.stdin.readline().strip()
    if not secret:
        print("no secret on standard input", file=sys.stderr)
        return 2
    print(keyring.encrypt(secret))
    return 0


def _reencrypt() -> int:
    """Every profile's credentials under the newest master key, written through the configured profile store."""
    from plumbing.config.factory import make_map
    from schemas import topics
    from schemas.profiles import Profile
    from schemas.upstreams import Deployment

    found = _master_keyring()
    if found is None:
        return 2
    settings, keyring = found

    async def rewrite() -> tuple[int, int]:
        profiles = make_map(settings, topics.PROFILES, Profile, "profiles")
        deployments = make_map(settings, topics.DEPLOYMENTS, Deployment, "deployments")
        await profiles.start()
        await deployments.start()
        try:
            for replicated in (profiles, deployments):
                caught_up = getattr(replicated, "caught_up", None)
                if caught_up is not None:
                    await asyncio.wait_for(caught_up.wait(), 30)
            count = 0
            for profile in profiles.values():
                if profile.credentials:
                    fresh = {name: keyring.reencrypt(token) for name, token in profile.credentials.items()}
                    await profiles.put(profile.id, profile.model_copy(update={"credentials": fresh}))
                    count += 1
            moved = 0
            for deployment in deployments.values():
                if deployment.credential is not None:
                    update = {"credential": keyring.reencrypt(deployment.credential)}
                    await deployments.put(deployment.name, deployment.model_copy(update=update))
                    moved += 1
            return count, moved
        finally:
            await profiles.stop()
            await deployments.stop()

    profile_count, deployment_count = asyncio.run(rewrite())
    print(f"re-encrypted the credentials of {profile_count} profile(s) and {deployment_count} deployment(s)")
    print("deployments' credentials in the configuration file: encrypt them again with `warden keys encrypt`")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    keys = commands.add_parser("keys", help="create, list, rotate and revoke Warden keys")
    add_connection_flags(keys)
    actions = keys.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="keys by prefix (never a secret)")
    listing.add_argument("--profile", help="only this profile's keys")
    listing.add_argument("--all", action="store_true", help="revoked keys too")
    actions.add_parser("get").add_argument("id")
    create = actions.add_parser("create", help="a new key; its secret is printed once")
    create.add_argument("--profile", required=True, help="the profile id (or default) its requests go through")
    create.add_argument("--agent", required=True, help="the agent id its requests are recorded as")
    create.add_argument("--user", dest="user_id", help="bind a user id too")
    create.add_argument("--name", help="a description")
    create.add_argument("--expires-at", dest="expires_at", help="ISO 8601 time it stops working")
    create.add_argument("--providers", help="comma-separated provider slugs it may call (default: all)")
    create.add_argument("--models", help="comma-separated models it may ask for (default: all)")
    rotate = actions.add_parser("rotate", help="a new secret; the old one works for --grace-seconds more")
    rotate.add_argument("id")
    rotate.add_argument("--grace-seconds", dest="grace_seconds", type=int, default=3600)
    actions.add_parser("revoke", help="refused everywhere within moments").add_argument("id")
    actions.add_parser("master-key", help="print a new WARDEN_MASTER_KEY value")
    actions.add_parser("reencrypt", help="rewrite every stored provider credential under the newest WARDEN_MASTER_KEY")
    actions.add_parser("encrypt", help="encrypt a secret read from standard input (a deployment's credential)")
    keys.set_defaults(run=run)
