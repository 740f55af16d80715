"""System checks (``manage.py check``): secrets at rest, the strategies queued builds name, and
the BuildKit settings of multi-node builders.

Secrets are node TLS keys, registry logins, projects' deploy keys and git tokens, and team
build secrets.

All are sealed with PORTAL_ENCRYPTION_KEY, or the secret key when it is unset. Without a key of
their own, rotating the secret key (a routine step after a leak) silently loses every stored
secret; with a key that changed, they cannot be opened and every build that needs them fails.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

from portal.models import Project, TeamSecret
from portal.sealing import SealError, unseal

from . import buildkitconfig
from .models import Build, BuilderNode, BuildxBuilder, RegistryCredential, Webhook
from .planner import BUILDER_STRATEGY, strategy_for


def _sealed_samples() -> list[tuple[str, str]]:
    """One stored secret of each kind, as (what, token); none when tables do not exist yet."""
    samples = []
    try:
        node = BuilderNode.objects.exclude(tls_sealed="").order_by("pk").first()
        login = RegistryCredential.objects.exclude(password_sealed="").order_by("pk").first()
        keyed = Project.objects.exclude(deploy_key_sealed="").order_by("pk").first()
        token = Project.objects.exclude(git_token_sealed="").order_by("pk").first()
        secret = TeamSecret.objects.select_related("team").order_by("pk").first()
        hook = Webhook.objects.select_related("project__team").order_by("pk").first()
    except DatabaseError:  # not migrated yet (migrate runs the checks first)
        return []
    if node is not None:
        samples.append((f"builder node {node.name!r} TLS key", node.tls_sealed))
    if login is not None:
        samples.append((f"registry login for {login.registry}", login.password_sealed))
    if keyed is not None:
        samples.append((f"deploy key of project {keyed}", keyed.deploy_key_sealed))
    if token is not None:
        samples.append((f"git token of project {token}", token.git_token_sealed))
    if secret is not None:
        samples.append((f"build secret {secret}", secret.value_sealed))
    if hook is not None:
        samples.append((f"webhook secret of project {hook.project}", hook.secret_sealed))
    return samples


@checks.register(checks.Tags.security)
def check_sealed_secrets(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    samples = _sealed_samples()
    messages: list[checks.CheckMessage] = []
    for what, token in samples:
        try:
            unseal(token)
        except SealError:
            messages.append(
                checks.Error(
                    f"The stored {what} cannot be decrypted with the current key.",
                    hint="Set PORTAL_ENCRYPTION_KEY back to the key it was saved with, or enter "
                    "the secrets again (admin: builder nodes; team pages: registry logins; project "
                    "pages: a new deploy key, the git token).",
                    id="crossport.E002",
                )
            )
    if samples and not settings.PORTAL_ENCRYPTION_KEY:
        messages.append(
            checks.Warning(
                "Secrets are stored but PORTAL_ENCRYPTION_KEY is not set: they are sealed with the "
                "secret key, so rotating SECRET_KEY makes them unreadable.",
                hint="Set PORTAL_ENCRYPTION_KEY to the current secret key's value (nothing "
                "changes for stored secrets), then rotate the secret key freely.",
                id="crossport.W003",
            )
        )
    return messages


def _unknown_strategies() -> dict[str, list[int]]:
    """Strategy -> ids of waiting builds that name a strategy or buildx builder that is gone."""
    try:
        waiting = list(Build.objects.filter(state=Build.State.QUEUED).values_list("pk", "strategy"))
        builders = set(BuildxBuilder.objects.values_list("name", flat=True))
    except DatabaseError:  # not migrated yet
        return {}
    unknown: dict[str, list[int]] = {}
    for pk, key in waiting:
        builder = BUILDER_STRATEGY.fullmatch(key)
        if strategy_for(key) is None or (builder and builder.group(1) not in builders):
            unknown.setdefault(key, []).append(pk)
    return unknown


@checks.register()
def check_queued_strategies(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return [
        checks.Error(
            f"Queued builds {', '.join(map(str, pks))} use the unknown strategy {key!r}.",
            hint="A strategy was removed or a buildx builder deleted: cancel these builds "
            "or create the builder again (admin: buildx builders).",
            id="crossport.E004",
        )
        for key, pks in sorted(_unknown_strategies().items())
    ]


@checks.register()
def check_buildkit_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The BuildKit image and registries multi-node builders are given."""
    try:
        buildkitconfig.image()
        buildkitconfig.render()
    except ImproperlyConfigured as exc:
        return [
            checks.Error(
                str(exc),
                hint="PORTAL_BUILDKIT_IMAGE is an image name; the registry settings list "
                "host:port (and for PORTAL_BUILDKIT_REGISTRY_CA, =/absolute/path/ca.pem).",
                id="crossport.E005",
            )
        ]
    return []
