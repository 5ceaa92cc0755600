"""One page of a query, and how many rows match over all pages."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")

# Past this no table has rows; clamping keeps absurd page numbers inside the databases' integer range.
MAX_OFFSET = 2**62


def page_offset(page_no: int, per_page: int) -> int:
    """Rows to skip before 1-based page `page_no`."""
    return min((page_no - 1) * per_page, MAX_OFFSET)


async def fetch_page(
    session: AsyncSession, query: Select[tuple[T]], page_no: int, per_page: int
) -> tuple[list[T], int]:
    """The objects on page `page_no` (1-based) of an ordered one-entity query, and the total count."""
    counted: Select[Any] = select(func.count()).select_from(query.order_by(None).subquery())
    total = await session.scalar(counted) or 0
    items = (await session.scalars(query.offset(page_offset(page_no, per_page)).limit(per_page))).all()
    return list(items), total
