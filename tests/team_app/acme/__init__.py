"""A team's own application package (see tests/team_app/README.md)."""
