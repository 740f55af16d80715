from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Crossport portal"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)


class AdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the portal's site, whose login shares the lockout."""

    default = False  # named in INSTALLED_APPS; PortalConfig stays this module's default
    default_site = "portal.logins.AdminSite"
