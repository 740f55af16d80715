from django.apps import AppConfig


class BuildsConfig(AppConfig):
    name = "builds"
    verbose_name = "Builds"

    def ready(self) -> None:
        from portal.forms import ProjectForm

        from . import checks  # noqa: F401  (registers the system checks)
        from .services import ref_problem

        ProjectForm.ref_checker = staticmethod(ref_problem)  # a saved ref must exist

        from django.db.models.signals import post_delete

        from .buildkitnodes import forget
        from .models import BuilderNode

        # A removed BuildKit node's buildx builder and TLS files go with it (API and admin).
        post_delete.connect(
            lambda sender, instance, **kw: forget(instance),
            sender=BuilderNode,
            weak=False,
            dispatch_uid="buildkit-node-forget",
        )
