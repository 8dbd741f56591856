"""What the API, the dashboard and the CLI do to the schedule, as plain functions over the store."""
