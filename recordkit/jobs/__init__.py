"""Jobs: the seam between deciding that work must happen and the worker that does it."""
