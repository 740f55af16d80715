"""The builds app's models, one module per concern; Django finds them through this package."""

from __future__ import annotations

from .build import Build, BuildPlatform, LogLine
from .credentials import RegistryCredential
from .hooks import Webhook, WebhookDelivery
from .ledger import AppendOnlyError, ManifestRecord, ManifestRecordQuerySet
from .nodes import BuilderMembership, BuilderNode, BuildxBuilder

__all__ = [
    "AppendOnlyError",
    "Build",
    "BuildPlatform",
    "BuilderMembership",
    "BuilderNode",
    "BuildxBuilder",
    "LogLine",
    "ManifestRecord",
    "ManifestRecordQuerySet",
    "RegistryCredential",
    "Webhook",
    "WebhookDelivery",
]
