"""Routes: sessions (meetings.md)."""

from fastapi import APIRouter

router = APIRouter(tags=["sessions"])
