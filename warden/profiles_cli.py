"""``warden profiles …``: the profiles admin API from the command line (an admin call, so httpx)."""

from __future__ import annotations

import argparse
import json
import os
import sys

import httpx


def client(args: argparse.Namespace) -> httpx.Client:
    token = args.token or os.environ.get("WARDEN_ADMIN_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=args.url.rstrip("/"), headers=headers, timeout=30)


def _body(args: argparse.Namespace) -> dict:
    text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()  # noqa: SIM115
    return json.loads(text)


def run(args: argparse.Namespace) -> int:
    with client(args) as http:
        if args.action == "list":
            response = http.get("/api/profiles")
        elif args.action == "get":
            response = http.get(f"/api/profiles/{args.id}")
        elif args.action == "create":
            response = http.post("/api/profiles", json=_body(args))
        elif args.action == "update":
            response = http.put(f"/api/profiles/{args.id}", json=_body(args))
        else:
            response = http.delete(f"/api/profiles/{args.id}")
    return print_answer(response)


def print_answer(response: httpx.Response) -> int:
    """An admin API answer on standard output (an error's on standard error); the command's exit status."""
    if response.status_code >= 400:
        print(response.text, file=sys.stderr)
        return 1
    if response.content:
        print(json.dumps(response.json(), indent=2))
    return 0


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("WARDEN_URL", "http://127.0.0.1:9000"),
        help="Warden's address (WARDEN_URL, default http://127.0.0.1:9000)",
    )
    parser.add_argument("--token", help="admin token (default: WARDEN_ADMIN_TOKEN)")


def add_parser(commands: argparse._SubParsersAction) -> None:
    profiles = commands.add_parser("profiles", help="list, create, update and delete profiles")
    add_connection_flags(profiles)
    actions = profiles.add_subparsers(dest="action", required=True)
    actions.add_parser("list")
    for name in ("get", "delete"):
        actions.add_parser(name).add_argument("id")
    actions.add_parser("create").add_argument("file", help="profile JSON file, or - for standard input")
    update = actions.add_parser("update")
    update.add_argument("id")
    update.add_argument("file", help="profile JSON file, or - for standard input")
    profiles.set_defaults(run=run)
