"""Routes: webhooks (meetings.md)."""

from fastapi import APIRouter

router = APIRouter(tags=["webhooks"])
