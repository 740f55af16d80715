"""System checks for the portal's configuration (``manage.py check``; ``serve`` runs them too).

A third-party language plugin that fails to load is an error: projects that chose it could not
render a Dockerfile, and the operator who installed it should learn at start-up, not from a team.
"""

from __future__ import annotations

from typing import Any

from django.core import checks

import lang_plugins


@checks.register()
def check_language_plugins(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return [
        checks.Error(
            f"Language plugin not loaded: {error}",
            hint="Fix or uninstall the package that declares this "
            f"{lang_plugins.ENTRY_POINT_GROUP} entry point, or silence crossport.E001 in "
            "SILENCED_SYSTEM_CHECKS to run without it.",
            id="crossport.E001",
        )
        for error in lang_plugins.plugin_errors()
    ]
