"""The REST API: one module a job, each handler documenting its own operation."""
