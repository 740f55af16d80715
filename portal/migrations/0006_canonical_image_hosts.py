"""Image references now spell the registry host canonically (lowercase; Docker Hub as
docker.io): rewrite older projects' images that way, so repositories compare equal."""

from django.db import migrations

from portal.grammar.reference import parse_repository


def canonical_images(apps, schema_editor):
    Project = apps.get_model("portal", "Project")
    for project in Project.objects.all():
        image = str(parse_repository(project.image))
        if image != project.image:
            project.image = image
            project.save(update_fields=["image"])


class Migration(migrations.Migration):
    dependencies = [("portal", "0005_project_tags")]

    operations = [migrations.RunPython(canonical_images, migrations.RunPython.noop)]
