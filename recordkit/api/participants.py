"""Routes: participants (meetings.md)."""

from fastapi import APIRouter

router = APIRouter(tags=["participants"])
