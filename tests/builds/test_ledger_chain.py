"""The ledger's hash chain: each team's rows link by SHA-256; a row changed, removed or slipped
in directly in the database (as its superuser, past the append-only trigger) is named by
`manage.py ledger verify`, and an export verifies offline."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, connections
from ledgerdb import past_the_trigger

from builds import chain, ledger
from builds.models import ManifestRecord
from builds.registry import IndexSummary
from portal.models import Project, Team


def _push(team: Team, n: int, project: Project | None = None) -> ManifestRecord:
    summary = IndexSummary(
        digest=f"sha256:{n:064x}",
        media_type="application/vnd.oci.image.index.v1+json",
        platforms={"linux/amd64": f"sha256:{n + 1000:064x}"},
    )
    return ledger.record(
        reference=f"localhost:5000/{team.slug}/app:v{n}",
        summary=summary,
        team=team,
        pushed_by=None,
        project=project,
        source=("https://git.example.com/app.git", "main", f"{n:040x}"),
    )


def _verify(capsys: Any, *args: str) -> tuple[int, str]:
    try:
        call_command("ledger", "verify", *args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.django_db
def test_rows_link_and_the_head_is_the_last_hash(alpha: Team, beta: Team) -> None:
    first, second = _push(alpha, 1), _push(alpha, 2)
    other = _push(beta, 3)
    assert first.chain_previous == "" and second.chain_previous == first.chain_hash
    assert other.chain_previous == ""  # one chain per team
    assert chain.head(alpha.pk) == second.chain_hash and len(second.chain_hash) == 64
    verdict = chain.verify_team(alpha.pk)
    assert verdict.ok and verdict.checked == 2 and verdict.head == second.chain_hash
    assert second.to_api()["chain"] == {"previous": first.chain_hash, "hash": second.chain_hash}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "attack, problem",
    [
        (
            "UPDATE builds_manifestrecord SET digest = 'sha256:forged' WHERE id = %s",
            "content changed",
        ),
        (
            "UPDATE builds_manifestrecord SET pushed_at = pushed_at + interval '1 second' WHERE id = %s",
            "content changed",
        ),
        ("UPDATE builds_manifestrecord SET chain_hash = '' WHERE id = %s", "has no hash"),
        ("DELETE FROM builds_manifestrecord WHERE id = %s", "does not follow"),
    ],
)
def test_a_superusers_change_is_named(alpha: Team, capsys: Any, attack: str, problem: str) -> None:
    rows = [_push(alpha, n) for n in range(1, 5)]
    assert _verify(capsys, "--team", "alpha")[0] == 0
    if connection.vendor == "sqlite":
        attack = attack.replace(
            "pushed_at + interval '1 second'", "datetime(pushed_at, '+1 second')"
        )
    past_the_trigger(attack, [rows[1].pk])
    code, text = _verify(capsys, "--team", "alpha")
    named = rows[2].pk if attack.startswith("DELETE") else rows[1].pk
    assert code == 1 and f"row {named}:" in text and problem in text, text


@pytest.mark.django_db
def test_a_row_written_past_the_ledger_is_named(alpha: Team, capsys: Any) -> None:
    _push(alpha, 1)
    # Written straight to the table (here through the model, skipping ledger.record): no link.
    stray = ManifestRecord(team=alpha, reference="x:y", digest="sha256:" + "f" * 64)
    stray.save()
    code, text = _verify(capsys, "--team", "alpha")
    assert code == 1 and f"row {stray.pk}: it has no hash" in text
    # The next honest append links to the last chained row, and the stray still shows.
    _push(alpha, 2)
    assert _verify(capsys, "--team", "alpha")[0] == 1


@pytest.mark.django_db
def test_an_export_verifies_offline(alpha: Team, tmp_path: Path, capsys: Any) -> None:
    for n in range(1, 4):
        _push(alpha, n)
    call_command("ledger", "export", "--team", "alpha")
    export = tmp_path / "alpha.jsonl"
    export.write_text(capsys.readouterr().out)
    assert len(export.read_text().splitlines()) == 3
    code, text = _verify(capsys, "--file", str(export))
    assert code == 0 and "3 rows verified" in text
    lines = export.read_text().splitlines()
    row = json.loads(lines[1])
    row["source_commit"] = "0" * 40
    export.write_text("\n".join([lines[0], json.dumps(row), lines[2]]) + "\n")
    code, text = _verify(capsys, "--file", str(export))
    assert code == 1 and f"row {row['id']}: its content changed" in text
    export.write_text("not json\n")
    with pytest.raises(Exception, match="line 1 is not JSON"):
        call_command("ledger", "verify", "--file", str(export))


@pytest.mark.django_db(transaction=True)
def test_parallel_appends_never_fork_the_chain(alpha: Team) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("several connections append at once only on PostgreSQL")
    start = threading.Barrier(4)

    def append(n: int) -> None:
        start.wait()
        try:
            _push(alpha, n)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ManifestRecord.objects.filter(team=alpha).count() == 4
    verdict = chain.verify_team(alpha.pk)
    assert verdict.ok and verdict.checked == 4, verdict


@pytest.mark.django_db
def test_the_team_page_shows_the_head_verifies_and_exports(
    alpha: Team, beta: Team, alice: Any, charlie: Any, tmp_path: Path, capsys: Any
) -> None:
    from django.test import Client

    rows = [_push(alpha, n) for n in range(1, 3)]
    _push(beta, 9)
    client = Client()
    client.force_login(alice)
    page = client.get("/teams/alpha/manifests/").content.decode()
    assert rows[-1].chain_hash in page and 'id="export-jsonl"' in page
    assert "holds" in client.get("/teams/alpha/manifests/verify").content.decode()
    export = b"".join(client.get("/teams/alpha/manifests/?format=jsonl").streaming_content)
    assert [json.loads(line)["id"] for line in export.splitlines()] == [r.pk for r in rows]
    (tmp_path / "e.jsonl").write_bytes(export)
    assert _verify(capsys, "--file", str(tmp_path / "e.jsonl"))[0] == 0
    past_the_trigger(
        "UPDATE builds_manifestrecord SET reference = 'x:y' WHERE id = %s", [rows[0].pk]
    )
    verdict = client.get("/teams/alpha/manifests/verify").content.decode()
    assert "broken" in verdict and f"row {rows[0].pk}" in verdict
    outsider = Client()
    outsider.force_login(charlie)  # beta's member: alpha's chain is not theirs to read
    assert outsider.get("/teams/alpha/manifests/verify").status_code == 404
    assert outsider.get("/teams/alpha/manifests/?format=jsonl").status_code == 404
