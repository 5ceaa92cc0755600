"""HTTP only: routes, request validation, the envelope, errors and auth."""
