"""``grantline policy bundle``: the OPA bundle holds the manifest, modules, data and index where
OPA reads them, and the same policy always gives the same bytes."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from grantline.cli.main import main
from grantline.domain.errors import ConfigError
from grantline.policy import PolicyBundle, build_index
from grantline.policy.index import lookup
from grantline.policy.opa_bundle import opa_bundle

POLICIES = Path(__file__).resolve().parents[3] / "policies"


def members(archive: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {info.name: info for info in tar.getmembers()}


def read(archive: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        extracted = tar.extractfile(name)
        assert extracted is not None
        return extracted.read()


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    return Path(shutil.copytree(POLICIES, tmp_path / "policies"))


def test_the_bundle_holds_the_manifest_the_modules_and_the_data(policies: Path) -> None:
    bundle = PolicyBundle.load(policies)
    archive = opa_bundle(bundle).tar_gz()

    names = set(members(archive))
    assert names == {"/.manifest", "/grantline.rego", "/data.json", "/grantline_index/data.json"}
    manifest = json.loads(read(archive, "/.manifest"))
    assert manifest == {
        "revision": bundle.digest,
        "roots": ["grantline", "grantline_index"],
        "metadata": {"grantline_digest": bundle.digest},
    }
    assert read(archive, "/grantline.rego") == (policies / "grantline.rego").read_bytes()
    assert read(archive, "/data.json") == (policies / "data.json").read_bytes()


def test_the_index_is_built_for_opa_which_hashes_raw_strings(policies: Path) -> None:
    bundle = PolicyBundle.load(policies)

    index = json.loads(read(opa_bundle(bundle).tar_gz(), "/grantline_index/data.json"))

    assert index == build_index(bundle.data)
    roles = lookup(index, "bindings_by_subject", "spiffe://example.org/ci-runner")
    assert "db-read" in roles


def test_entries_are_plain_files_owned_by_root_with_fixed_times(policies: Path) -> None:
    archive = opa_bundle(PolicyBundle.load(policies)).tar_gz()

    for info in members(archive).values():
        assert info.isfile()
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
        assert info.mode == 0o644
    with gzip.GzipFile(fileobj=io.BytesIO(archive)) as zipped:
        zipped.read()
        assert zipped.mtime == 0


def test_the_same_policy_gives_the_same_bytes(policies: Path, tmp_path: Path) -> None:
    first = opa_bundle(PolicyBundle.load(policies)).tar_gz()
    again = Path(shutil.copytree(policies, tmp_path / "again"))
    (again / "grantline.rego").touch()

    assert opa_bundle(PolicyBundle.load(again)).tar_gz() == first


def test_a_changed_policy_gives_another_revision(policies: Path) -> None:
    before = opa_bundle(PolicyBundle.load(policies))
    (policies / "grantline.rego").write_text(
        (policies / "grantline.rego").read_text() + "\n# changed\n"
    )

    after = opa_bundle(PolicyBundle.load(policies))

    assert after.revision != before.revision
    assert after.tar_gz() != before.tar_gz()


def test_nested_data_and_packages_add_their_roots(tmp_path: Path) -> None:
    directory = tmp_path / "p"
    (directory / "teams" / "payments").mkdir(parents=True)
    (directory / "policy.rego").write_text("package grantline\n\ndecision := {}\n")
    (directory / "helpers.rego").write_text("package lib.strings\n\nx := 1\n")
    (directory / "teams" / "payments" / "data.json").write_text('{"owners": ["user:pat"]}')
    (directory / "data.json").write_text('{"grantline": {"roles": {}}}')

    bundle = opa_bundle(PolicyBundle.load(directory), revision="v7")

    assert bundle.roots == ("grantline", "grantline_index", "lib", "teams")
    assert json.loads(bundle.files[".manifest"])["revision"] == "v7"
    assert "teams/payments/data.json" in bundle.files


def test_tests_and_test_modules_stay_out_of_the_bundle(policies: Path) -> None:
    (policies / "grantline_test.rego").write_text("package grantline\n\ntest_x if true\n")

    names = set(members(opa_bundle(PolicyBundle.load(policies)).tar_gz()))

    assert not any("test" in name for name in names)


@pytest.mark.parametrize("revision", ["", "line\nbreak", "tab\there"])
def test_a_revision_with_control_characters_is_refused(policies: Path, revision: str) -> None:
    with pytest.raises(ConfigError, match="revision"):
        opa_bundle(PolicyBundle.load(policies), revision=revision)


def test_data_that_sets_the_index_itself_is_refused(policies: Path) -> None:
    (policies / "grantline_index").mkdir()
    (policies / "grantline_index" / "data.json").write_text("{}")

    with pytest.raises(ConfigError, match="reserved"):
        opa_bundle(PolicyBundle.load(policies))


def test_the_command_writes_the_bundle(
    policies: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle.tar.gz"

    assert main(["policy", "bundle", str(policies), "--out", str(out)]) == 0
    assert main(["policy", "bundle", str(policies), "--out", str(tmp_path / "b2.tar.gz")]) == 0

    digest = PolicyBundle.load(policies).digest
    assert f"revision {digest}" in capsys.readouterr().out
    assert out.read_bytes() == (tmp_path / "b2.tar.gz").read_bytes()
    assert json.loads(read(out.read_bytes(), "/.manifest"))["revision"] == digest


def test_the_command_refuses_a_policy_the_broker_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "allows"
    directory.mkdir()
    (directory / "p.rego").write_text(
        'package grantline\n\ndecision := {"allow": true, "reasons": []}\n'
    )

    code = main(["policy", "bundle", str(directory), "--out", str(tmp_path / "b.tar.gz")])

    assert code == 4
    assert "would allow anything" in capsys.readouterr().err
    assert not (tmp_path / "b.tar.gz").exists()
