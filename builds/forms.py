"""The builder node form, shared by the admin and `POST /api/v1/nodes` (which feeds it a dict).

Everything is checked before anything connects: the endpoint grammar, TLS only for tcp://,
plain tcp only on loopback, and the TLS material (parses, key matches the certificate, signed
by the CA, valid now). The PEM fields are write-only: a saved key is never shown again.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from builds.dockerhost import validate_node_endpoint
from builds.models import BuilderNode
from portal.grammar import InvalidValue
from portal.models import Team

name_validator = RegexValidator(
    r"\A[a-z0-9][a-z0-9_-]{0,62}\Z",
    "Use lowercase letters, digits, '-' and '_' (starting with a letter or digit).",
)
PEM_HELP = "PEM. Leave empty to keep what is saved."


BUILDKIT_ENDPOINTS = (
    "a BuildKit daemon is reached at tcp://host:port (mutual TLS off loopback) or unix://"
)


class NodeForm(forms.ModelForm):
    tls_ca = forms.CharField(
        label="TLS CA", required=False, widget=forms.Textarea, help_text=PEM_HELP
    )
    tls_cert = forms.CharField(
        label="TLS client certificate", required=False, widget=forms.Textarea, help_text=PEM_HELP
    )
    tls_key = forms.CharField(
        label="TLS client key",
        required=False,
        widget=forms.Textarea(attrs={"autocomplete": "off"}),
        help_text=PEM_HELP,
    )
    clear_tls = forms.BooleanField(label="Remove the saved TLS material", required=False)
    # Teams by slug, in the admin's select as in the API's list.
    reserved_for = forms.ModelMultipleChoiceField(
        Team.objects.order_by("slug"),
        to_field_name="slug",
        required=False,
        help_text=BuilderNode._meta.get_field("reserved_for").help_text,
    )

    class Meta:
        model = BuilderNode
        fields = [
            "name",
            "kind",
            "endpoint",
            "enabled",
            "max_builds",
            "repair_emulators",
            "reserved_for",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].validators.append(name_validator)
        self.fields["max_builds"].required = False
        self.tls_material: Any = None
        self.tls_expires: Any = None

    def clean_max_builds(self) -> int:
        value = self.cleaned_data.get("max_builds")
        if value is None:
            return self.instance.max_builds or 2
        if not 1 <= value <= 64:
            raise ValidationError("Between 1 and 64.")
        return int(value)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        endpoint = data.get("endpoint")
        if endpoint is None:
            return data
        pem = {k: (data.get(f"tls_{k}") or "").strip() for k in ("ca", "cert", "key")}
        pem = {k: f"{v}\n" if v else "" for k, v in pem.items()}
        tls: dict[str, str] | None = None
        if any(pem.values()):
            tls = pem
        elif self.instance.pk and self.instance.tls_sealed and not data.get("clear_tls"):
            saved = self.instance.tls()
            tls = {"ca": saved.ca, "cert": saved.cert, "key": saved.key} if saved else None
        try:
            parsed, self.tls_material, self.tls_expires = validate_node_endpoint(endpoint, tls)
        except InvalidValue as exc:
            self.add_error("endpoint" if exc.kind == "endpoint" else None, str(exc))
            return data
        if data.get("kind") == BuilderNode.Kind.BUILDKIT and parsed.scheme == "ssh":
            self.add_error("endpoint", BUILDKIT_ENDPOINTS)
            return data
        data["endpoint"] = str(parsed)
        return data

    def save(self, commit: bool = True) -> BuilderNode:
        node: BuilderNode = super().save(commit=False)
        node.set_tls(self.tls_material, self.tls_expires)
        if commit:
            node.save()
            self.save_m2m()
        return node


def node_form_from_api(body: dict[str, Any], instance: BuilderNode | None = None) -> NodeForm:
    """The API's shape (`tls` as an object of PEM strings) mapped onto the form's fields."""
    fields = ("name", "kind", "endpoint", "enabled", "max_builds", "repair_emulators")
    data: dict[str, Any] = {k: body[k] for k in (*fields, "reserved_for") if k in body}
    if instance is not None:  # a partial update keeps what it does not name
        pool = [team.slug for team in instance.reserved_for.all()]
        data = {k: getattr(instance, k) for k in fields} | {"reserved_for": pool} | data
    data.setdefault("enabled", True)
    data.setdefault("kind", BuilderNode.Kind.ENGINE)
    tls = body.get("tls") or {}
    data |= {f"tls_{k}": tls.get(k) or "" for k in ("ca", "cert", "key")}
    return NodeForm(data, instance=instance)
