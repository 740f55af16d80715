"""Forms shared by the browser pages and the JSON API (the API feeds them a dict)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.urls import reverse_lazy

import lang_plugins
from portal import outbound, tagging
from portal.access import NOT_ALLOWED, repository_allowed, teams_for
from portal.grammar import InvalidValue
from portal.grammar.git import validate_git_ref, validate_git_url
from portal.grammar.platform import normalize_platforms
from portal.grammar.reference import ImageRef, parse_repository
from portal.models import Membership, Project, Team, name_validator

COMMON_PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
OPTION_PREFIX = "opt_"


class PlatformsWidget(forms.CheckboxSelectMultiple):
    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        if hasattr(data, "getlist"):
            return data.getlist(name)
        return data.get(name)


class PlatformsField(forms.Field):
    """A list (or comma-separated string) of platforms, normalised: aarch64 -> linux/arm64."""

    widget = PlatformsWidget(choices=[(p, p) for p in COMMON_PLATFORMS])

    def to_python(self, value: Any) -> list[str]:
        if value in (None, "", []):
            raise ValidationError("Pick at least one platform.", code="required")
        if not isinstance(value, (str, list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValidationError("Platforms must be a list of strings like linux/arm64.")
        try:
            return normalize_platforms(value)
        except InvalidValue as exc:
            raise ValidationError(str(exc)) from exc


def _grammar(check: Any, value: str) -> str:
    try:
        result = check(value)
    except InvalidValue as exc:
        raise ValidationError(str(exc)) from exc
    return result


RefChecker = Callable[[str, str, Team, "Project | None"], "str | None"]


class ProjectForm(forms.Form):
    # Asks the git server whether the ref exists (the builds app, which owns git, sets it in
    # BuildsConfig.ready; portal never imports builds). None: not checked.
    ref_checker: RefChecker | None = None
    team = forms.ModelChoiceField(queryset=Team.objects.none(), to_field_name="slug")
    name = forms.CharField(max_length=64, validators=[name_validator])
    git_url = forms.CharField(
        label="Git URL", max_length=2000, help_text="https://, ssh:// or file://"
    )
    ref = forms.CharField(
        max_length=255, initial="main", required=False, help_text="Branch, tag or commit (main)"
    )
    image = forms.CharField(
        label="Image repository", max_length=255, help_text="e.g. registry.example.com/team/app"
    )
    platforms = PlatformsField(initial=COMMON_PLATFORMS[:2])
    tags = forms.CharField(
        label="Tags",
        required=False,
        max_length=1300,
        initial="latest",
        help_text="Space-separated tags or templates: {branch} {short_sha} {sha} "
        "{semver} (v1.2.3 gives 1.2.3 1.2 1) {latest} (latest on the default ref).",
    )
    immutable_tags = forms.BooleanField(
        required=False, label="Immutable versions", help_text="Never move an existing 1.2.3 tag."
    )
    registry_cache = forms.BooleanField(
        required=False,
        initial=True,
        label="Layer cache in the registry",
        help_text="Builds read and write their layers at <image>:crossport-cache-<platforms>, "
        "so a builder that never built the project starts warm.",
    )
    language = forms.ChoiceField(
        choices=(),
        widget=forms.Select(
            attrs={
                "hx-get": reverse_lazy("project-options"),
                "hx-target": "#plugin-options",
                "hx-swap": "outerHTML",
            }
        ),
    )

    def __init__(
        self,
        *args: Any,
        user: Any,
        instance: Project | None = None,
        strategies: list[tuple[str, str]] | None = None,
        **kwargs: Any,
    ) -> None:
        """`instance`: edit that project (its team, name and image stay); `strategies`: the
        (value, text) choices of a default build strategy, which the builds app knows."""
        super().__init__(*args, **kwargs)
        self.user = user
        self.instance = instance
        if instance is not None:
            for fixed in ("team", "name", "image"):
                del self.fields[fixed]
        if strategies is not None:
            self.fields["strategy"] = forms.ChoiceField(
                choices=strategies, initial="auto", label="Default build strategy"
            )
        if "team" in self.fields:
            cast(forms.ModelChoiceField, self.fields["team"]).queryset = teams_for(user)
        cast(forms.ChoiceField, self.fields["language"]).choices = [
            (key, plugin.label) for key, plugin in lang_plugins.all_plugins().items()
        ]

    def clean_git_url(self) -> str:
        url = _grammar(validate_git_url, self.cleaned_data["git_url"])
        try:  # what is refused whatever DNS says is refused now; the rest at each fetch
            outbound.check_git_url(url)
        except InvalidValue as exc:
            raise ValidationError(str(exc)) from exc
        return url

    def clean_ref(self) -> str:
        return _grammar(validate_git_ref, self.cleaned_data["ref"] or "main")

    def clean_tags(self) -> list[str]:
        value = self.data.get("tags", self.cleaned_data.get("tags"))
        items = value if isinstance(value, list) else str(value or "latest").split()
        try:
            return tagging.validate_templates(items)
        except InvalidValue as exc:
            raise ValidationError(str(exc)) from exc

    def clean_image(self) -> str:
        image = cast(ImageRef, _grammar(parse_repository, self.cleaned_data["image"]))
        host, port = outbound.registry_address(image.domain)
        if outbound.refused_without_lookup(host, port):
            raise ValidationError(str(outbound.Refused("image repository", str(image))))
        return str(image)

    def raw_options(self, known: set[str] | None = None) -> dict[str, Any]:
        """API clients send {"options": {...}}; the page sends opt_<name> fields (only those
        in `known` when given: a preview posted while the page swaps one language's fields
        for another's still carries the old ones)."""
        options = self.data.get("options")
        if isinstance(options, dict):
            return options
        if options not in (None, ""):
            raise ValidationError("options must be an object of option name to value.")
        return {
            key[len(OPTION_PREFIX) :]: self.data.get(key)
            for key in self.data
            if key.startswith(OPTION_PREFIX)
            and (known is None or key[len(OPTION_PREFIX) :] in known)
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        team, name, image = cleaned.get("team"), cleaned.get("name"), cleaned.get("image")
        if team and image and not repository_allowed(image, team):
            self.add_error("image", NOT_ALLOWED)
        if team and name and Project.objects.filter(team=team, name=name).exists():
            self.add_error("name", f"Team {team.slug} already has a project called {name}.")
        self._check_ref(cleaned)
        language = cleaned.get("language")
        if language:
            plugin = lang_plugins.get_plugin(language)
            try:
                cleaned["options"] = plugin.clean_options(self.raw_options())
            except ValidationError as exc:
                self.add_error(None, exc)
            except ValueError as exc:  # OptionError names the option
                self.add_error(None, f"Option {exc}")
        return cleaned

    def _check_ref(self, cleaned: dict[str, Any]) -> None:
        """Only once the rest is valid (a round trip to the git server), and only when the URL
        or ref is new."""
        url, ref = cleaned.get("git_url"), cleaned.get("ref")
        team = cleaned.get("team") or (self.instance.team if self.instance else None)
        checker = type(self).ref_checker
        if self.errors or not (url and ref and team) or checker is None:
            return
        if self.instance and (url, ref) == (self.instance.git_url, self.instance.ref):
            return
        problem = checker(url, ref, team, self.instance)
        if problem:
            self.add_error("ref", problem)

    def save(self) -> Project:
        data = self.cleaned_data
        if self.instance is not None:
            project = self.instance
            for field in (
                "git_url",
                "ref",
                "platforms",
                "language",
                "options",
                "immutable_tags",
                "registry_cache",
            ):
                setattr(project, field, data[field])
            project.tag_templates = data["tags"]
            project.strategy = data.get("strategy", project.strategy)
            project.save()
            return project
        return Project.objects.create(
            team=data["team"],
            name=data["name"],
            git_url=data["git_url"],
            ref=data["ref"],
            image=data["image"],
            platforms=data["platforms"],
            language=data["language"],
            options=data["options"],
            tag_templates=data["tags"],
            immutable_tags=data["immutable_tags"],
            registry_cache=data["registry_cache"],
            strategy=data.get("strategy") or "auto",
            created_by=self.user,
        )


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, initial="cli")


class MembershipForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)

    def __init__(self, *args: Any, team: Team, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.team = team

    def clean_username(self) -> str:
        from django.contrib.auth import get_user_model

        username = self.cleaned_data["username"]
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise ValidationError(f"No active user called {username}.")
        if self.team.memberships.filter(user=user).exists():
            raise ValidationError(f"{username} is already in {self.team.slug}.")
        self.user = user
        return username

    def save(self) -> Membership:
        return Membership.objects.create(
            user=self.user, team=self.team, role=self.cleaned_data["role"]
        )
