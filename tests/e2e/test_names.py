"""Names a site cannot be deployed with (F2, F3): one rule on both sides. A newline or a byte
that is not UTF-8 in a local name is a failure of its own: the rest deploys, exit 1, and the
site stays deployable. The same name on the server is reported, and ``--delete`` removes it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import Target
from tests.e2e.helpers import make_site, run_cli


def _site_with(tmp_path: Path, name: bytes) -> Path:
    site = make_site(tmp_path / "site")
    with open(os.path.join(os.fsencode(site), name), "wb") as f:
        f.write(b"odd\n")
    return site


def _names(root: Path) -> set[bytes]:
    return set(os.listdir(os.fsencode(root)))


def test_a_newline_in_a_local_name_fails_that_file_only(target: Target, tmp_path: Path) -> None:
    site = _site_with(tmp_path, b"two\nlines.html")
    result = run_cli("push", "--delete", str(site), target.url(), target=target)
    assert result.exit_code == 1, result.output
    assert "two\\x0alines.html" in result.output
    assert "name refused: it contains control characters" in result.output
    assert b"two\nlines.html" not in _names(target.disk)
    assert (target.disk / "index.html").read_text() == "<html>home</html>\n"
    # The site is still deployable: the next push, without the file, succeeds.
    os.unlink(os.path.join(os.fsencode(site), b"two\nlines.html"))
    again = run_cli("push", "--delete", str(site), target.url(), target=target)
    assert again.exit_code == 0, again.output


def test_a_name_that_is_not_utf8_fails_that_file_only(target: Target, tmp_path: Path) -> None:
    site = _site_with(tmp_path, b"logo-\xe9.png")
    result = run_cli("push", "--json", str(site), target.url(), target=target)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == 1
    failures = {f["path"]: f["message"] for f in summary["failures"]}
    assert failures == {"logo-\\xe9.png": "source: name refused: it is not valid UTF-8"}
    assert (target.disk / "css" / "main.css").exists()
    assert b"logo-\xe9.png" not in _names(target.disk)


def test_a_newline_name_on_the_server_is_kept_or_deleted(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    odd = os.path.join(os.fsencode(target.disk), b"left\nover.html")
    with open(odd, "wb") as f:
        f.write(b"put there by something else\n")
    kept = run_cli("push", str(site), target.url(), target=target)
    assert kept.exit_code == 0, kept.output
    assert "left\\x0aover.html: destination name refused" in kept.output
    assert os.path.exists(odd)
    deleted = run_cli("push", "--delete", str(site), target.url(), target=target)
    assert deleted.exit_code == 0, deleted.output
    assert not os.path.exists(odd)
