"""Query parameters every list route shares (recordings.md §6.2), declared once."""

from __future__ import annotations

from recordkit.schema import Int, QueryParam, Str

PAGE_NO = QueryParam("page_no", Int(minimum=0), "1-based page number; 0 reads as 1.")
PER_PAGE = QueryParam("per_page", Int(minimum=0, maximum=100), "Items per page, default 20; 0 reads as 20.")
PAGING = (PAGE_NO, PER_PAGE)

SORT_ORDER = QueryParam("sort_order", Str(enum=("ASC", "DESC")))
SEARCH = QueryParam("search", Str(max_length=255))
START_TIME = QueryParam("start_time", Str(format="date-time"))
END_TIME = QueryParam("end_time", Str(format="date-time"))
