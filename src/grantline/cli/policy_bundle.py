"""``grantline policy bundle [DIR] --out FILE.tar.gz``: the OPA bundle of a policy directory,
for an OPA bundle server to serve."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from grantline.cli import exit_codes
from grantline.domain.errors import ConfigError
from grantline.policy.embedded import EmbeddedRegoEngine
from grantline.policy.opa_bundle import opa_bundle


def register(policy_commands: Any) -> None:
    parser = policy_commands.add_parser(
        "bundle",
        help="write the OPA bundle (tar.gz) of the policy",
        description="Checks the policy in DIR as the broker would load it, then writes an OPA "
        "bundle: .manifest (revision, roots), the Rego modules, data.json and the lookup index "
        "the policy reads. The same policy and revision always give the same bytes. The "
        "revision defaults to the bundle digest, which the broker then records as the "
        "policy digest of OPA's decisions.",
    )
    parser.add_argument("directory", nargs="?", type=Path, default=Path("policies"))
    parser.add_argument("--out", required=True, type=Path, metavar="FILE.tar.gz")
    parser.add_argument("--revision", help="the bundle revision (default: the bundle digest)")
    parser.set_defaults(run=run_bundle)


def run_bundle(args: argparse.Namespace) -> int:
    # Loaded through the engine: a bundle the broker would refuse is never written.
    bundle = opa_bundle(EmbeddedRegoEngine(args.directory).bundle, args.revision)
    try:
        args.out.write_bytes(bundle.tar_gz())
    except OSError as exc:
        raise ConfigError(f"cannot write {args.out}: {exc}") from exc
    print(f"wrote {args.out}: revision {bundle.revision}, roots {', '.join(bundle.roots)}")
    return exit_codes.OK
