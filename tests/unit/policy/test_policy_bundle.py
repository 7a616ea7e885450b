"""PolicyBundle reads the files that count, merges data like OPA and digests them unambiguously."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from grantline.domain.errors import ConfigError
from grantline.policy import PolicyBundle, manifest_digest

REGO = b"package grantline\n\ndecision := {}\n"


def write(root: Path, files: dict[str, bytes]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def data(document: object) -> bytes:
    return json.dumps(document).encode()


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    return write(tmp_path / "policies", {"grantline.rego": REGO, "data.json": data({"a": 1})})


def test_digest_follows_the_documented_manifest(policy_dir: Path) -> None:
    manifest = b"grantline-policy-bundle-v1\n"
    for name in ("data.json", "grantline.rego"):
        content = (policy_dir / name).read_bytes()
        manifest += hashlib.sha256(content).hexdigest().encode() + b" " + name.encode() + b"\0"

    bundle = PolicyBundle.load(policy_dir)

    assert bundle.digest == "sha256:" + hashlib.sha256(manifest).hexdigest()


def test_digest_changes_when_one_byte_of_the_policy_changes(policy_dir: Path) -> None:
    before = PolicyBundle.load(policy_dir).digest
    write(policy_dir, {"grantline.rego": REGO.replace(b"{}", b"{ }")})

    assert PolicyBundle.load(policy_dir).digest != before


def test_digest_covers_data_json(policy_dir: Path) -> None:
    before = PolicyBundle.load(policy_dir).digest
    write(policy_dir, {"data.json": data({"a": 2})})

    assert PolicyBundle.load(policy_dir).digest != before


def test_digest_covers_file_names(policy_dir: Path) -> None:
    before = PolicyBundle.load(policy_dir).digest
    (policy_dir / "grantline.rego").rename(policy_dir / "other.rego")

    assert PolicyBundle.load(policy_dir).digest != before


def test_digest_does_not_depend_on_the_order_files_are_listed() -> None:
    digests = {"b.rego": "11" * 32, "a.rego": "22" * 32, "a/x.rego": "33" * 32}

    assert manifest_digest(digests) == manifest_digest(dict(reversed(digests.items())))


def test_digest_does_not_depend_on_the_order_files_were_created(tmp_path: Path) -> None:
    files = {"z.rego": REGO, "a.rego": REGO + b"# a\n", "m/data.json": data({"k": 1})}
    forward = write(tmp_path / "forward", files)
    backward = write(tmp_path / "backward", dict(reversed(files.items())))

    assert PolicyBundle.load(forward).digest == PolicyBundle.load(backward).digest


def test_moving_content_between_files_changes_the_digest() -> None:
    same = "44" * 32

    assert manifest_digest({"ab.rego": same}) != manifest_digest({"a.rego": same})


def test_only_rego_and_data_json_outside_tests_and_hidden_dirs_count(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "grantline.rego": REGO,
            "grantline_test.rego": REGO,
            "lib/extra.rego": REGO,
            "tests/decision_cases.json": b"[]",
            "tests/data.json": data({"t": 1}),
            "tests/helper.rego": REGO,
            ".git/x.rego": REGO,
            "lib/.hidden.rego": REGO,
            "README.md": b"# policies",
            "other.json": b"{}",
            "lib/tests/data.json": data({"nested": True}),
        },
    )

    bundle = PolicyBundle.load(root)

    assert sorted(bundle.files) == ["grantline.rego", "lib/extra.rego", "lib/tests/data.json"]
    assert sorted(bundle.modules) == ["grantline.rego", "lib/extra.rego"]
    assert bundle.data == {"lib": {"tests": {"nested": True}}}


def test_file_digests_are_hex_sha256_of_each_file(policy_dir: Path) -> None:
    bundle = PolicyBundle.load(policy_dir)

    assert bundle.file_digests["grantline.rego"] == hashlib.sha256(REGO).hexdigest()
    assert bundle.files["grantline.rego"] == REGO


def test_nested_data_json_is_merged_at_its_directory_path(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "p.rego": REGO,
            "data.json": data({"top": 1, "a": {"kept": True}}),
            "a/b/data.json": data({"c": [1, 2]}),
        },
    )

    assert PolicyBundle.load(root).data == {"top": 1, "a": {"kept": True, "b": {"c": [1, 2]}}}


def test_two_data_files_setting_one_key_are_refused(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {"p.rego": REGO, "data.json": data({"a": {"b": 1}}), "a/data.json": data({"b": 2})},
    )

    with pytest.raises(ConfigError, match=r"data\.json"):
        PolicyBundle.load(root)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"a": 1, "a": 2}', "duplicate keys"),
        (b'{"a": NaN}', "not valid JSON"),
        (b"[1, 2]", "must hold a JSON object"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_data_json_is_refused_naming_the_file(
    policy_dir: Path, content: bytes, problem: str
) -> None:
    write(policy_dir, {"sub/data.json": content})

    with pytest.raises(ConfigError, match=problem) as caught:
        PolicyBundle.load(policy_dir)
    assert "sub/data.json" in caught.value.message


def test_a_rego_file_that_is_not_utf8_is_refused_naming_it(policy_dir: Path) -> None:
    write(policy_dir, {"bad.rego": b"package x\n\xff\n"})

    with pytest.raises(ConfigError, match=r"bad\.rego"):
        PolicyBundle.load(policy_dir)


def test_a_directory_without_rego_files_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"data.json": data({})})

    with pytest.raises(ConfigError, match=r"no \.rego policy files"):
        PolicyBundle.load(tmp_path)


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        PolicyBundle.load(tmp_path / "missing")


def test_a_policy_file_that_cannot_be_read_is_refused_naming_it(policy_dir: Path) -> None:
    (policy_dir / "gone.rego").symlink_to(policy_dir / "missing.rego")

    with pytest.raises(ConfigError, match=r"gone\.rego"):
        PolicyBundle.load(policy_dir)


def test_the_stat_fingerprint_is_stable_while_nothing_changes(policy_dir: Path) -> None:
    bundle = PolicyBundle.load(policy_dir)

    assert bundle.fingerprint_stat() == bundle.loaded_fingerprint
    assert not bundle.changed_on_disk()


@pytest.mark.parametrize(
    "change",
    [
        lambda root: write(root, {"data.json": data({"a": 22})}),
        lambda root: write(root, {"new.rego": REGO}),
        lambda root: (root / "data.json").unlink(),
        lambda root: os.utime(root / "grantline.rego", ns=(1, 1)),
    ],
    ids=["edit", "add", "remove", "touch"],
)
def test_the_stat_fingerprint_notices_changes(policy_dir: Path, change: object) -> None:
    bundle = PolicyBundle.load(policy_dir)
    change(policy_dir)  # type: ignore[operator]

    assert bundle.changed_on_disk()


def test_files_that_do_not_count_do_not_change_the_fingerprint(policy_dir: Path) -> None:
    bundle = PolicyBundle.load(policy_dir)
    write(policy_dir, {"tests/cases.json": b"[]", "notes.md": b"x", "x_test.rego": REGO})

    assert not bundle.changed_on_disk()
