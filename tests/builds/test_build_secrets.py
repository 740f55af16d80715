"""Builds get team secrets only as BuildKit secret mounts, fail early without them, and never
show their values in the log or the reasons."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from builds.buildsecrets import mounted
from builds.buildx import BuildSpec
from builds.models import Build
from builds.redact import Redactor
from builds.worker import work_once
from fakes import FakeBackend
from portal import team_secrets
from portal.models import Project, Team, TeamSecret

NETRC = "machine git.corp.example.com login robot password Tr0ub4dor-and-3\n"
PASSWORD = "Tr0ub4dor-and-3"
SCOPED_RUN = """\
FROM --platform=$BUILDPLATFORM localhost:5000/library/golang:1.19 AS build
ARG CROSSPORT_TEAM_SCOPE
RUN --mount=type=secret,id=gitNetrc,target=/root/.netrc go mod download
"""


def build_of(project: Project) -> Build:
    return Build.objects.get(project=project)


@pytest.fixture
def netrc(alpha: Team, alice: Any) -> TeamSecret:
    return team_secrets.create(alpha, "gitNetrc", NETRC, None, alice)


def test_the_plugin_option_mounts_the_secret_from_a_private_file(
    queued_build: Build, project: Project, netrc: TeamSecret, settings: Any
) -> None:
    project.options = {"netrc_secret": "gitNetrc"}
    project.save()
    backend = FakeBackend()
    work_once("w1", backend)
    build = build_of(project)
    assert build.state == Build.State.SUCCEEDED, build.reason
    assert backend.secret_files == {"gitNetrc": (0o600, 0o700, NETRC)}
    spec = backend.spec
    assert spec is not None
    argv = spec.argv()
    path = spec.secrets["gitNetrc"]
    assert f"--secret=id=gitNetrc,src={path}" in argv
    scope = project.team.opaque_id
    assert f"--build-arg=CROSSPORT_TEAM_SCOPE={scope}" in argv
    assert not any(PASSWORD in a for a in argv) and PASSWORD not in json.dumps(spec.env())
    assert "type=secret,id=gitNetrc,target=/root/.netrc" in build.dockerfile
    assert not path.exists() and not list(Path(settings.PORTAL_WORKSPACE_DIR).iterdir())
    netrc.refresh_from_db()
    assert netrc.last_used_at is not None


def test_a_projects_own_dockerfile_gets_what_it_mounts(
    queued_build: Build, project: Project, netrc: TeamSecret
) -> None:
    project.custom_dockerfile = SCOPED_RUN
    project.save()
    backend = FakeBackend()
    work_once("w1", backend)
    assert build_of(project).state == Build.State.SUCCEEDED
    assert backend.secret_files["gitNetrc"][2] == NETRC


@pytest.mark.parametrize(
    ("dockerfile", "reason"),
    [
        (SCOPED_RUN.replace("gitNetrc", "nosuch"), "secret nosuch does not exist in team alpha"),
        (
            SCOPED_RUN.replace("ARG CROSSPORT_TEAM_SCOPE\n", ""),
            "line 2 reads a secret without ARG CROSSPORT_TEAM_SCOPE",
        ),
        (
            SCOPED_RUN.replace("ARG CROSSPORT_TEAM_SCOPE\n", "ARG CROSSPORT_TEAM_SCOPE\nFROM x\n"),
            "line 4 reads a secret without ARG CROSSPORT_TEAM_SCOPE",
        ),
        (SCOPED_RUN.replace("id=gitNetrc,", ""), "mounts '.netrc', no secret name"),
    ],
)
def test_a_build_without_its_secrets_fails_before_buildx_runs(
    queued_build: Build, project: Project, netrc: TeamSecret, dockerfile: str, reason: str
) -> None:
    project.custom_dockerfile = dockerfile
    project.save()
    backend = FakeBackend()
    work_once("w1", backend)
    build = build_of(project)
    assert build.state == Build.State.FAILED and build.fault == Build.Fault.USER
    assert reason in build.reason and build.reason.startswith("build secrets: ")
    assert backend.spec is None  # buildx never ran


def test_a_secret_scoped_to_other_projects_is_refused(
    queued_build: Build, project: Project, alpha: Team, alice: Any
) -> None:
    other = Project.objects.create(
        team=alpha,
        name="other",
        git_url=project.git_url,
        image="localhost:5000/alpha/other",
        platforms=["linux/amd64"],
        language="go",
    )
    team_secrets.create(alpha, "gitNetrc", NETRC, ["other"], alice)
    project.options = {"netrc_secret": "gitNetrc"}
    project.save()
    work_once("w1", FakeBackend())
    assert "secret gitNetrc is not available to project hello" in build_of(project).reason
    assert other.pk


def rawjson(*objects: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(o, indent=2).encode() + b"\n" for o in objects)


def logs(data: bytes) -> dict[str, Any]:
    entry = {"vertex": "sha256:aa", "stream": 1, "data": base64.b64encode(data).decode()}
    return {"logs": [entry | {"timestamp": "2026-12-04T10:00:00Z"}]}


def test_values_are_hidden_in_the_log_even_split_across_rawjson_objects(
    queued_build: Build, project: Project, netrc: TeamSecret
) -> None:
    project.options = {"netrc_secret": "gitNetrc"}
    project.save()
    b64 = base64.b64encode(NETRC.encode()).decode()
    step = {"vertexes": [{"digest": "sha256:aa", "name": "[build 2/3] RUN go mod download"}]}
    stream = rawjson(
        step,
        logs(b"reading machine git.corp.example.com login robot pass"),  # split mid-value
        logs(b"word Tr0ub4dor-and-3\n"),
        logs(f"as base64 {b64} and {b64.rstrip('=')}\n".encode()),
        logs(base64.urlsafe_b64encode(NETRC.encode()) + b"\n"),
    )
    stream += f"ERROR: failed to solve: bad netrc {NETRC.strip()}\n".encode()
    work_once("w1", FakeBackend(stream=stream, exit_code=1))
    build = build_of(project)
    texts = "\n".join(build.log_lines.values_list("text", flat=True))
    everything = (
        texts + build.reason + "".join(build.platform_states.values_list("reason", flat=True))
    )
    assert "***" in texts and "bad netrc ***" in build.reason
    for form in (PASSWORD, b64, b64.rstrip("="), NETRC.strip()):
        assert form not in everything


def test_the_redactor_hides_values_lines_and_base64_forms() -> None:
    value = "[x]\nindex-url = http://u:pa55word-x@127.0.0.1:1/simple\n"
    hide = Redactor([value, "token-abc?>"])
    line = "index-url = http://u:pa55word-x@127.0.0.1:1/simple"
    assert hide(f"said {line}!") == "said ***!"
    assert hide("[x]") == "[x]"  # too short to hide alone
    assert Redactor(["abc12345\n"])("it is abc12345") == "it is ***"
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for part in ("token-abc?>", value, line):
            text = encode(part.encode()).decode()
            assert hide(f"x {text} y") == "x *** y"
            assert hide(f"x {text.rstrip('=')} y") == "x *** y"
    assert Redactor()("nothing to hide") == "nothing to hide"


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        ("[global]\nindex-url = https://user:pw-1234@pypi.corp/simple\n", "pw-1234"),
        ("machine git.corp login robot password tok-5678\n", "tok-5678"),
        ("<settings><servers><server><password>mvn-9012</password></server>", "mvn-9012"),
        ("//npm.corp/:_authToken=npm-3456\n", "npm-3456"),
    ],
)
def test_credentials_inside_config_files_are_hidden_alone(value: str, printed: str) -> None:
    assert Redactor([value])(f"tool says {printed}.") == "tool says ***."


def test_secret_files_with_commas_in_their_path_stay_one_field(tmp_path: Path) -> None:
    spec = BuildSpec(
        context=tmp_path,
        dockerfile=tmp_path / "Dockerfile",
        platforms=["linux/amd64"],
        tags=["localhost:5000/a/b:1"],
        metadata_file=tmp_path / "m.json",
        secrets={"npmrc": Path('/data/odd,dir"x/npmrc')},
    )
    assert '--secret=id=npmrc,"src=/data/odd,dir""x/npmrc"' in spec.argv()


def test_mounted_reads_ids_and_default_ids() -> None:
    names, problems = mounted(
        "FROM a\nARG CROSSPORT_TEAM_SCOPE=x\n"
        "RUN --mount=type=secret,id=one --mount=type=cache,target=/c "
        "--mount=type=secret,id=two,target=/t true\nRUN --mount=type=secret,target=/run/three true\n"
    )
    assert names == ["one", "two", "three"] and problems == []


@pytest.mark.parametrize(
    "flag",
    [
        "--mount=type=Secret,id=npmrc,target=/root/.npmrc",
        "--mount=TYPE=secret,ID=npmrc",
        "--MOUNT=type=SECRET,src=npmrc",
    ],
)
@pytest.mark.parametrize("run", ["RUN", "run", "Run"])
def test_secret_mounts_in_any_spelling_need_the_team_scope(flag: str, run: str) -> None:
    """BuildKit reads mount keys and types in any case: so does the scan, or a RUN could read
    a secret with no team scope in its cache key."""
    names, problems = mounted(f"FROM alpine\n{run} {flag} cat /root/.npmrc\n")
    assert names == ["npmrc"] and "without ARG CROSSPORT_TEAM_SCOPE" in problems[0]
    scoped, none = mounted(f"FROM alpine\nARG CROSSPORT_TEAM_SCOPE\n{run} {flag} true\n")
    assert scoped == ["npmrc"] and none == []
