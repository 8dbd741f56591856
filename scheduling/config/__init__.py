"""Settings as code: pydantic models, the TOML loader, durations, the pure compiler and the check
against a Celery task registry."""
