"""The Periodic service: Flask app (API, dashboard), Celery app, shipped tasks and CLI."""
