"""Apps (meetings.md §2): an account's containers for presets, meetings and webhooks."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from recordkit.clock import utcnow
from recordkit.db.engine import Database
from recordkit.db.models import App
from recordkit.db.paging import fetch_page
from recordkit.meetings.presets import default_presets


async def create_app(db: Database, account_id: str, name: str) -> App:
    """A new app of the account, created together with its four default presets."""
    now = utcnow()
    app = App(id=str(uuid.uuid4()), account_id=account_id, name=name, created_at=now)
    async with db.write() as session:
        session.add(app)
        session.add_all(default_presets(app.id, now))
    return app


async def list_apps(
    db: Database, account_id: str, *, search: str | None, descending: bool, page_no: int, per_page: int
) -> tuple[list[App], int]:
    """One page of the account's apps ordered by creation time, and the total count."""
    query = select(App).where(App.account_id == account_id)
    if search is not None:
        query = query.where(func.lower(App.name).contains(search.lower(), autoescape=True))
    order = (App.created_at.desc(), App.id.desc()) if descending else (App.created_at.asc(), App.id.asc())
    async with db.read() as session:
        return await fetch_page(session, query.order_by(*order), page_no, per_page)


class AppDirectory:
    """Finds an account's app by id, remembering the ones found.

    Apps are never renamed or deleted (meetings.md §2), so a found app stays valid for the life of
    the process, in every process of a fleet; unknown ids are always asked of the database again.
    Saves a database round trip on every app-scoped request.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._known: dict[tuple[str, str], App] = {}

    async def find(self, account_id: str, app_id: str) -> App | None:
        """The app `app_id` of `account_id`, or None."""
        known = self._known.get((account_id, app_id))
        if known is not None:
            return known
        async with self._db.read() as session:
            app = (
                await session.execute(select(App).where(App.id == app_id, App.account_id == account_id))
            ).scalar_one_or_none()
        if app is not None:
            self._known[(account_id, app_id)] = app
        return app
