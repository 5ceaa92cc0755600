"""Recorders: the composite and the per-track recorder, and the media stages they are built from."""
