"""Webhooks: the outbox of events and (later) their signed delivery."""
