"""Command line: argument parsing only; everything else is called in from the parts."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from recordkit.config import Settings, UnsafeDataDir, build_settings, choose_database_url
from recordkit.roles import API, WORKER, BadRoles, parse_roles, role_name
from recordkit.vendor_logs import hold_vendor_loggers_at_info

# Everything recordkit writes under its data dir — the SQLite file and its -wal/-shm, the spool, the bucket,
# the keys — is created through this process (PyAV and SQLite included), so one process-wide umask makes every
# new directory 0700 and every new file 0600 without each writer having to remember.
PRIVATE_UMASK = 0o077


def main(argv: list[str] | None = None) -> None:
    os.umask(PRIVATE_UMASK)
    hold_vendor_loggers_at_info()
    parser = argparse.ArgumentParser(prog="recordkit", description="Self-hosted RealtimeKit recordings.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API, the meetings' media and the recorders")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    _common(serve)
    serve.add_argument("--public-url", help="external base URL (default http://HOST:PORT)")
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--role",
        default="all",
        help="all (default: everything in one process), api, media, or api,media; other roles need PostgreSQL",
    )
    _bucket(serve)

    worker = commands.add_parser("worker", help="take record, upload and webhook jobs from PostgreSQL (the fleet)")
    worker.add_argument("--host", default="127.0.0.1", help="where /metrics and /healthz answer")
    worker.add_argument("--port", type=int, default=8788)
    _common(worker)
    worker.add_argument("--public-url", help="the API's external base URL, which download links point at")
    worker.add_argument("--log-level", default="info")
    _bucket(worker)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    _common(migrate)

    status = commands.add_parser("status", help="print the fleet: processes, their load and recordings, the job queue")
    _common(status)

    bot = commands.add_parser("bot", help="join a meeting as a participant with synthetic audio and video")
    bot.add_argument("--server", required=True, help="recordkit base URL, e.g. http://127.0.0.1:8787")
    bot.add_argument("--token", required=True, help="the participant's token (authToken)")
    bot.add_argument("--duration", type=float, metavar="S", help="leave after S seconds (default: on Ctrl-C)")
    bot.add_argument("--name", help="label drawn into the video (default: bot-XXXX)")
    bot.add_argument("--audio-only", action="store_true", help="publish audio only")
    bot.add_argument("--meeting-id", help="default: the meetingId inside the token")
    bot.add_argument("--receive", type=int, default=4, metavar="N", help="receive up to N others (default 4)")
    bot.add_argument(
        "--pre-encoded", action="store_true", help="send a 1 s loop encoded once: near-zero CPU, for load tests"
    )

    demo = commands.add_parser("demo", help="serve, record two synthetic participants for 10 s, show the file")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8787)
    demo.add_argument("--data-dir", help="default: a new temporary folder")
    demo.add_argument("--seconds", type=float, default=10.0)
    demo.add_argument("--exit", action="store_true", help="stop the service when done instead of serving on")

    args = parser.parse_args(argv)
    try:
        _run(args)
    except (UnsafeDataDir, BadRoles) as error:
        raise SystemExit(f"recordkit: {error}") from error


def _run(args: argparse.Namespace) -> None:
    if args.command == "serve":
        _serve(args, parse_roles(args.role))
    elif args.command == "worker":
        _serve(args, frozenset({WORKER}))
    elif args.command == "demo":
        _demo(args)
    elif args.command == "bot":
        _bot(args)
    elif args.command == "migrate":
        settings, _ = build_settings(Path(args.data_dir), args.database_url)
        _migrate(settings)
        print("database is up to date")
    elif args.command == "status":
        _status(args)


def _common(command: argparse.ArgumentParser) -> None:
    command.add_argument("--data-dir", default="./recordkit-data")
    command.add_argument("--database-url", help="default: SQLite in the data dir; postgresql://… for PostgreSQL")


def _bucket(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--bucket-url", help="the built-in bucket shared by the fleet: file:///folder (default: in the data dir)"
    )


def _migrate(settings: Settings) -> None:
    from recordkit.db.migrate import upgrade

    upgrade(settings.database_url)


def _serve(args: argparse.Namespace, roles: frozenset[str]) -> None:
    from recordkit.app import create_app
    from recordkit.server import serve

    listen_url = f"http://{args.host}:{args.port}"
    try:
        settings, _ = build_settings(
            Path(args.data_dir),
            args.database_url,
            args.public_url or listen_url,
            roles=roles,
            bucket_url=args.bucket_url,
            listen_url=listen_url,
        )
    except ValueError as error:
        raise SystemExit(f"recordkit: {error}") from error
    _migrate(settings)
    if API in roles:
        _print_welcome(settings)
    else:
        print(f"recordkit {role_name(roles)} is starting at {settings.public_url}", flush=True)
    serve(create_app(settings), args.host, args.port, args.log_level)


def _status(args: argparse.Namespace) -> None:
    from recordkit.fleet import FleetUnreadable, fleet_status

    try:
        print(fleet_status(choose_database_url(Path(args.data_dir), args.database_url, os.environ)), end="")
    except FleetUnreadable as error:
        raise SystemExit(f"recordkit: {error}") from error


def _demo(args: argparse.Namespace) -> None:
    import asyncio

    from recordkit.demo import run_demo

    data_dir = Path(args.data_dir) if args.data_dir else None
    code = asyncio.run(run_demo(args.host, args.port, data_dir, args.seconds, keep_serving=not args.exit))
    if code:
        raise SystemExit(code)


def _bot(args: argparse.Namespace) -> None:
    from recordkit.bot.run import run_cli

    code = run_cli(
        server=args.server,
        token=args.token,
        duration_s=args.duration,
        name=args.name,
        audio_only=args.audio_only,
        meeting_id=args.meeting_id,
        receive=args.receive,
        pre_encoded=args.pre_encoded,
    )
    if code:
        raise SystemExit(code)


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
