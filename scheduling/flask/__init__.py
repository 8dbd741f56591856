"""The Flask extension: API, dashboard, health, metrics and the CLI groups on the app it is given.

from scheduling.flask import Periodic
Periodic(app)                    # dashboard /periodic/, API /periodic/api/v1
"""

from scheduling.flask.extension import DEFAULT_URL_PREFIX, SETTINGS_CONFIG_KEY, Periodic
from scheduling.flask.services import Services, current_services

__all__ = ["DEFAULT_URL_PREFIX", "SETTINGS_CONFIG_KEY", "Periodic", "Services", "current_services"]
