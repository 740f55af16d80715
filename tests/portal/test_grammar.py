from __future__ import annotations

import pytest

from portal.grammar import InvalidValue
from portal.grammar.git import validate_git_ref, validate_git_url
from portal.grammar.platform import normalize_platform, normalize_platforms
from portal.grammar.reference import ImageRef, parse_reference, parse_repository, validate_tag

SHA = "sha256:" + "a" * 64

# --- image references ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        ("alpine", "docker.io", "library/alpine", None, None),
        ("alpine:3.19", "docker.io", "library/alpine", "3.19", None),
        ("docker.io/alpine", "docker.io", "library/alpine", None, None),
        ("index.docker.io/alice/app", "docker.io", "alice/app", None, None),
        ("alice/app:v1.2.3-rc_1", "docker.io", "alice/app", "v1.2.3-rc_1", None),
        ("localhost/app", "localhost", "app", None, None),
        ("localhost:5000/team/app:latest", "localhost:5000", "team/app", "latest", None),
        ("127.0.0.1:5000/app", "127.0.0.1:5000", "app", None, None),
        ("[::1]:5000/app:x", "[::1]:5000", "app", "x", None),
        # Hosts are case-insensitive: one repository, one spelling.
        ("Registry.Example.COM/a/b/c", "registry.example.com", "a/b/c", None, None),
        ("Registry-1.Docker.IO/alice/app", "docker.io", "alice/app", None, None),
        ("Index.Docker.io/alpine", "docker.io", "library/alpine", None, None),
        ("ghcr.io/org/my-app__x.y", "ghcr.io", "org/my-app__x.y", None, None),
        ("ghcr.io/org/a---b", "ghcr.io", "org/a---b", None, None),
        (f"alpine@{SHA}", "docker.io", "library/alpine", None, SHA),
        (f"reg.io/app:1@{SHA}", "reg.io", "app", "1", SHA),
        ("app:" + "T" * 128, "docker.io", "library/app", "T" * 128, None),
        ("reg.io/app@sha512:" + "0" * 128, "reg.io", "app", None, "sha512:" + "0" * 128),
    ],
)
def test_parse_reference_valid(text, domain, path, tag, digest):
    ref = parse_reference(text)
    assert ref == ImageRef(domain=domain, path=path, tag=tag, digest=digest)


def test_image_ref_repository_and_str():
    ref = parse_reference(f"alice/app:v1@{SHA}")
    assert ref.repository == "docker.io/alice/app"
    assert str(ref) == f"docker.io/alice/app:v1@{SHA}"
    assert str(parse_reference("localhost:5000/app")) == "localhost:5000/app"
    assert str(parse_reference("redis:7")) == "docker.io/library/redis:7"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Alice/app",  # uppercase repository (not taken as a registry host)
        "alice/App",
        "reg.io/Team/app",
        "-app",
        "app-",
        "reg.io/-app",
        "alice/.app",
        "a..b",
        "a___b",
        "alice//app",
        "alice/app/",
        "/alice/app",
        "alice app",
        " alice/app",
        "alice/app ",
        "alice/app\n",
        "alice/app\x00",
        "alice\tapp",
        "app:",
        "app:-tag",
        "app:.tag",
        "app:" + "t" * 129,
        "app:tag:more",
        "app:tä",
        "app@",
        "app@sha256:abc",
        "app@sha256:" + "A" * 64,
        "app@sha256:" + "a" * 63,
        "app@md5:" + "a" * 32,
        "app@" + "a" * 64,
        "a" * 64,
        "reg.io:port/app",
        "-reg.io/app",
        "reg-.io/app",
        "[zz::1]/app",
        "reg.io/" + "a" * 249,  # 255 + 1 characters of repository
        "alpine" + "/x" * 125,  # normalised "docker.io/" prefix pushes it over 255
        "ａpp",  # fullwidth letter
    ],
)
def test_parse_reference_invalid(text):
    with pytest.raises(InvalidValue) as info:
        parse_reference(text)
    assert "image reference" in str(info.value)


def test_reference_length_limit_is_inclusive():
    parse_reference("reg.io/" + "a" * 248)  # 255 characters


def test_uppercase_message():
    with pytest.raises(InvalidValue, match="must be lowercase"):
        parse_reference("Alice/app")


def test_parse_repository():
    assert parse_repository("localhost:5000/team/app").repository == "localhost:5000/team/app"
    assert parse_repository("app").repository == "docker.io/library/app"
    for text in ("app:latest", f"app@{SHA}", "localhost:5000/app:1"):
        with pytest.raises(InvalidValue, match="image repository"):
            parse_repository(text)


@pytest.mark.parametrize("text", ["latest", "v1.2.3", "1", "_x", "A-b.C_d", "x" * 128])
def test_validate_tag_valid(text):
    assert validate_tag(text) == text


@pytest.mark.parametrize(
    "text", ["", "-x", ".x", "x" * 129, "a b", "a/b", "a:b", "a@b", "é", "x\n", "x\x00", None]
)
def test_validate_tag_invalid(text):
    with pytest.raises(InvalidValue, match="tag"):
        validate_tag(text)


# --- platforms ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("amd64", "linux/amd64"),
        ("x86_64", "linux/amd64"),
        ("x86-64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/amd64/v1", "linux/amd64"),
        ("linux/amd64/v2", "linux/amd64/v2"),
        ("linux/amd64/v3", "linux/amd64/v3"),
        ("linux/amd64/v4", "linux/amd64/v4"),
        ("linux/arm64", "linux/arm64"),
        ("arm64", "linux/arm64"),
        ("aarch64", "linux/arm64"),
        ("arm64/v8", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm/v7", "linux/arm/v7"),
        ("arm", "linux/arm/v7"),
        ("armhf", "linux/arm/v7"),
        ("armv7", "linux/arm/v7"),
        ("armv7l", "linux/arm/v7"),
        ("arm/v7", "linux/arm/v7"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/v6", "linux/arm/v6"),
        ("armel", "linux/arm/v6"),
        ("armv6", "linux/arm/v6"),
        ("armv6l", "linux/arm/v6"),
        ("linux/386", "linux/386"),
        ("i386", "linux/386"),
        ("i686", "linux/386"),
        ("x86", "linux/386"),
        ("linux/ppc64le", "linux/ppc64le"),
        ("ppc64el", "linux/ppc64le"),
        ("linux/s390x", "linux/s390x"),
        ("linux/riscv64", "linux/riscv64"),
        ("Linux/AMD64", "linux/amd64"),
        ("AARCH64", "linux/arm64"),
    ],
)
def test_normalize_platform(text, expected):
    assert normalize_platform(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "linux",
        "windows/amd64",
        "darwin/arm64",
        "linux/mips",
        "linux/sparc64",
        "foo",
        "linux/amd64/v9",
        "linux/amd64/v0",
        "linux/arm/v9",
        "linux/arm64/v9",
        "linux/386/v2",
        "linux/armhf/v6",
        "linux/arm64/v8/x",
        "linux//arm64",
        "linux/arm64/",
        "/linux/arm64",
        " linux/amd64",
        "linux/ amd64",
        "linux/amd64\n",
        "linux/amd64\x00",
        "linux/amd64,linux/arm64",
    ],
)
def test_normalize_platform_invalid(text):
    with pytest.raises(InvalidValue, match="platform"):
        normalize_platform(text)


def test_normalize_platforms():
    assert normalize_platforms("linux/amd64, arm64  aarch64,,armhf") == [
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
    ]
    assert normalize_platforms(["x86_64", "linux/amd64", "linux/arm64/v8"]) == [
        "linux/amd64",
        "linux/arm64",
    ]
    assert normalize_platforms("arm64 s390x" for _ in range(2)) == ["linux/arm64", "linux/s390x"]


@pytest.mark.parametrize(
    "items",
    [
        "",
        " , ",
        [],
        ["linux/amd64", "linux/mips"],
        "amd64 arm64 arm/v7 arm/v6 386 ppc64le s390x riscv64 amd64/v2",  # 9 distinct
        ["linux/amd64", 5],
    ],
)
def test_normalize_platforms_invalid(items):
    with pytest.raises(InvalidValue, match="platform"):
        normalize_platforms(items)


def test_normalize_platforms_eight_is_enough():
    assert len(normalize_platforms("amd64 arm64 arm/v7 arm/v6 386 ppc64le s390x riscv64")) == 8


# --- git ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "https://git.example.com/team/app.git",
        "https://git.example.com:8443/team/app",
        "https://127.0.0.1:3000/team/app.git",
        "HTTPS://git.example.com/app",
        "ssh://git@git.example.com/team/app.git",
        "ssh://git@git.example.com:2222/~alice/app.git",
        "ssh://[::1]:2222/srv/app.git",
        "file:///srv/git/app.git",
    ],
)
def test_validate_git_url_valid(text):
    assert validate_git_url(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "git.example.com/app",
        "git@git.example.com:team/app.git",  # scp-like
        "http://git.example.com/app",
        "git://git.example.com/app",
        "ftp://git.example.com/app",
        "ext::sh -c touch% /tmp/pwned",
        "ext::sh",
        "fd::17",
        "https::git.example.com/app",
        "https://git.example.com/a::b",
        "-uhttps://git.example.com/app",
        "--upload-pack=touch /tmp/x",
        "https://git.example.com/app --upload-pack=x",
        "https://git.example.com/app?--upload-pack=x",
        "ssh://-oProxyCommand=touch%20x/app",
        "ssh://git@-oProxyCommand=x/app",
        "ssh://git.example.com/-app",
        "https://git.example.com/%2d-upload-pack",
        "https://git.example.com/app\n",
        "https://git.example.com/app\x00",
        "https://git.example.com/a\rb",
        "https://git.example.com/a%0ab",
        "https://git.example.com/a%00b",
        "https://git.example.com/a b",
        "https://git.example.com/a\u200bb",
        "https://",
        "https:///app",
        "https://git.example.com",
        "https://git.example.com/",
        "https://git.example.com:99999999/app",
        "https://git.example.com:65536/app",
        "https://git.example.com:port/app",
        "https://[::1/app",
        "ssh://user@/app",
        "file://srv/git/app",
        "file://relative",
        "file:///",
        "file://localhost/srv/app",
        "https://git.example.com/" + "a" * 2000,
        None,
    ],
)
def test_validate_git_url_invalid(text):
    with pytest.raises(InvalidValue, match="git URL"):
        validate_git_url(text)


@pytest.mark.parametrize(
    "text",
    [
        "main",
        "feature/new-ui",
        "v1.2.3",
        "release-2024.05",
        "0123456789abcdef0123456789abcdef01234567",
        "abc1234",
        "refs/heads/main",
        "a@b",
        "ü-branch",
        "a" * 255,
    ],
)
def test_validate_git_ref_valid(text):
    assert validate_git_ref(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-main",
        "--upload-pack=x",
        "a..b",
        "..",
        ".hidden",
        "a/.hidden",
        "main.lock",
        "a.lock/b",
        "main/",
        "/main",
        "a//b",
        "main.",
        "@",
        "a@{1}",
        "a b",
        "a\tb",
        "a\nb",
        "a\x00b",
        "a\x7fb",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[b",
        "a\\b",
        "a" * 256,
        None,
    ],
)
def test_validate_git_ref_invalid(text):
    with pytest.raises(InvalidValue, match="git branch, tag or commit"):
        validate_git_ref(text)


def test_invalid_value_message_names_the_kind_and_value():
    with pytest.raises(InvalidValue) as info:
        normalize_platform("linux/mips")
    error = info.value
    assert isinstance(error, ValueError)
    assert error.kind == "platform"
    assert str(error) == "Invalid platform 'linux/mips': unknown architecture 'mips'."


@pytest.mark.parametrize(
    "url",
    [
        "https://bob:s3cr3t-canary@git.example.com/x.git",
        "https://bob:s3cr3t%2Dcanary@git.example.com/x.git",
        "ssh://git:s3cr3t-canary@git.example.com/x.git",
    ],
)
def test_git_url_passwords_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(InvalidValue) as info:
        validate_git_url(url)
    assert "s3cr3t" not in str(info.value)
    assert "credentials" in str(info.value)


def test_git_url_user_names_without_password_are_fine() -> None:
    assert validate_git_url("ssh://git@git.example.com:2222/team/app.git")
