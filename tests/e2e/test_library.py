"""The library API: what `import sftpmirror` offers, and the sync wrappers against real servers."""

from __future__ import annotations

import inspect
import io
import json
import re
from pathlib import Path

import pytest

import sftpmirror
from sftpmirror.reporting.summary import SCHEMA
from tests.conftest import Target
from tests.e2e.helpers import assert_same_tree, make_site

README = Path(__file__).parents[2] / "README.md"


def test_all_is_sorted_unique_and_resolves() -> None:
    names = sftpmirror.__all__
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(sftpmirror, name), name


def test_every_public_name_is_in_all() -> None:
    public = {
        name
        for name, value in vars(sftpmirror).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(sftpmirror.__all__) - {"__version__"}


def test_readme_documents_every_exported_name() -> None:
    text = README.read_text()
    section = text[text.index("## Library") : text.index("## How it works")]
    documented = set(re.findall(r"`(\w+)`", section))
    missing = set(sftpmirror.__all__) - documented - {"__version__"}
    assert not missing, f"README's Library section does not mention {sorted(missing)}"


def test_push_sync_and_pull_sync(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    out, err = io.StringIO(), io.StringIO()
    result = sftpmirror.push_sync(
        site,
        target.url(),
        sftpmirror.MirrorOptions(delete=True),
        sftpmirror.ConnectOptions(
            password=sftpmirror.Secret(target.password), known_hosts=target.known_hosts
        ),
        sftpmirror.TextReporter(verbose=True, out=out, err=err),
    )
    assert result.ok
    assert_same_tree(site, target.disk)
    copies = result.report.done[sftpmirror.Op.COPY]
    assert copies == 11
    assert result.summary().startswith(f"done: 8 mkdir, {copies} copy; "), result.summary()
    assert "copy     index.html  (new file)" in out.getvalue()
    assert "sftpmirror: copying files" in err.getvalue()
    summary = result.as_json()
    assert summary["schema"] == SCHEMA
    assert summary["done"]["copy"] == copies
    assert summary["ok"] is True
    json.dumps(summary)  # serialisable as it is
    assert target.password not in out.getvalue() + err.getvalue() + json.dumps(summary)

    pulled = sftpmirror.pull_sync(
        target.url(),
        tmp_path / "copy",
        connect_options=sftpmirror.ConnectOptions(
            password=sftpmirror.Secret(target.password), known_hosts=target.known_hosts
        ),
    )
    assert pulled.ok
    assert_same_tree(site, tmp_path / "copy")


def test_errors_are_typed_with_exit_codes(embedded: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    options = sftpmirror.ConnectOptions(
        password=sftpmirror.Secret("wrong-password"), known_hosts=embedded.known_hosts
    )
    with pytest.raises(sftpmirror.AuthError) as info:
        sftpmirror.push_sync(site, embedded.url(), connect_options=options)
    assert info.value.exit_status == sftpmirror.ExitStatus.AUTH
    assert "wrong-password" not in str(info.value)
