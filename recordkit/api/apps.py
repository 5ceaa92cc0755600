"""Routes: apps (meetings.md)."""

from fastapi import APIRouter

router = APIRouter(tags=["apps"])
