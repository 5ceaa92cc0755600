"""Command line: argument parsing only; everything else is called in from the parts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recordkit.config import Settings, build_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="recordkit", description="Self-hosted RealtimeKit recordings.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API (and, later, media and recorders)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    _common(serve)
    serve.add_argument("--public-url", help="external base URL (default http://HOST:PORT)")
    serve.add_argument("--log-level", default="info")

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    _common(migrate)

    args = parser.parse_args(argv)
    if args.command == "serve":
        _serve(args)
    elif args.command == "migrate":
        settings, _ = build_settings(Path(args.data_dir), args.database_url)
        _migrate(settings)
        print("database is up to date")


def _common(command: argparse.ArgumentParser) -> None:
    command.add_argument("--data-dir", default="./recordkit-data")
    command.add_argument("--database-url", help="default: SQLite in the data dir; postgresql://… for PostgreSQL")


def _migrate(settings: Settings) -> None:
    from recordkit.db.migrate import upgrade

    upgrade(settings.database_url)


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from recordkit.app import create_app

    public_url = args.public_url or f"http://{args.host}:{args.port}"
    settings, _ = build_settings(Path(args.data_dir), args.database_url, public_url)
    _migrate(settings)
    _print_welcome(settings)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        proxy_headers=False,
    )


def _print_welcome(settings: Settings) -> None:
    creds = settings.credentials
    base = f"{settings.public_url}/client/v4/accounts/{creds.account_id}/realtime/kit"
    print(
        f"recordkit is starting at {settings.public_url}\n"
        f"  data dir:    {settings.data_dir}\n"
        f"  database:    {'SQLite' if settings.is_sqlite else 'PostgreSQL'}\n"
        f"  account id:  {creds.account_id}\n"
        f"  API token:   {creds.api_token}\n"
        f"Create an app:\n"
        f"  curl -s -X POST {base}/apps -H 'Authorization: Bearer {creds.api_token}' "
        f"-H 'Content-Type: application/json' -d '{{\"name\": \"my app\"}}'",
        file=sys.stdout,
        flush=True,
    )
