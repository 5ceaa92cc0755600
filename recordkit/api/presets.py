"""Routes: presets (meetings.md)."""

from fastapi import APIRouter

router = APIRouter(tags=["presets"])
