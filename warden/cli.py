"""The ``warden`` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from plumbing import logs
from services.ingress.settings import IngressSettings


def _overrides(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _serve(args: argparse.Namespace) -> int:
    from warden.embedded import serve

    settings = IngressSettings(**_overrides(args, ("host", "port", "data_dir")))
    logs.configure(settings.log_level)
    asyncio.run(serve(settings))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from plumbing.store.chdb_store import ChdbStore
    from plumbing.store.migrations import migrate
    from plumbing.store.server_store import ServerStore

    settings = IngressSettings(**_overrides(args, ("data_dir",)))
    logs.configure(settings.log_level)

    async def run() -> list[str]:
        store = (
            ServerStore(settings.clickhouse_url)
            if settings.clickhouse_url
            else ChdbStore(settings.data_dir / "clickhouse")
        )
        try:
            return await migrate(store)
        finally:
            await store.close()

    applied = asyncio.run(run())
    print("applied: " + (", ".join(applied) if applied else "nothing, the schema is up to date"))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="warden", description="Warden, a secure LLM proxy.")
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run ingress, logger and console in one process (embedded default)")
    serve.add_argument("--host", help="address to listen on (WARDEN_HOST, default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port to listen on (WARDEN_PORT, default 9000)")
    serve.add_argument("--data-dir", dest="data_dir", help="where chDB keeps its data (WARDEN_DATA_DIR)")
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="apply the ClickHouse schema migrations")
    migrate.add_argument("--data-dir", dest="data_dir", help="chDB data directory (WARDEN_DATA_DIR)")
    migrate.set_defaults(run=_migrate)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
