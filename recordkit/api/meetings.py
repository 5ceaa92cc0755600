"""Routes: meetings (meetings.md)."""

from fastapi import APIRouter

router = APIRouter(tags=["meetings"])
