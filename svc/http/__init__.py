"""The REST API: one module a job, each handler documenting its own operation.

The rules it keeps are ``docs/api.md`` ("HTTP", "Auth"); its errors ``docs/api-errors.md``.
"""
