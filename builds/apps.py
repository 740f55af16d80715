from django.apps import AppConfig


class BuildsConfig(AppConfig):
    name = "builds"
    verbose_name = "Builds"

    def ready(self) -> None:
        from portal.forms import ProjectForm

        from . import checks  # noqa: F401  (registers the system checks)
        from .services import ref_problem

        ProjectForm.ref_checker = staticmethod(ref_problem)  # a saved ref must exist
