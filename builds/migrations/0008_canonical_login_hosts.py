"""Registry logins are looked up by the canonical host (lowercase; Docker Hub as docker.io):
rewrite older rows that way, keeping the most recently saved login where two now coincide."""

from django.db import migrations

from portal.grammar.reference import canonical_domain


def canonical_hosts(apps, schema_editor):
    Login = apps.get_model("builds", "RegistryCredential")
    seen: set[tuple[int, str]] = set()
    for login in Login.objects.order_by("-updated_at", "-pk"):
        host = canonical_domain(login.registry)
        if (login.team_id, host) in seen:
            login.delete()
            continue
        seen.add((login.team_id, host))
        if host != login.registry:
            login.registry = host
            login.save(update_fields=["registry"])


class Migration(migrations.Migration):
    dependencies = [("builds", "0007_merges_and_credentials")]

    operations = [migrations.RunPython(canonical_hosts, migrations.RunPython.noop)]
