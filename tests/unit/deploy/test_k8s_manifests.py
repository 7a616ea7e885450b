"""deploy/k8s, parsed: replicas and their disruption budget, probes, a locked-down pod, settings
and secrets by reference, the keys every replica shares, and the mounted policy."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.deploy.deploy_files import (
    IMAGE_UID,
    K8S,
    REPO,
    k8s_documents,
    k8s_resource,
    settings_names,
)

from grantline import settings_rules
from grantline.config import Settings, log_signer, token_signer
from grantline.domain.errors import ConfigError
from grantline.evidence.signer import LocalEd25519Signer
from grantline.policy.bundle import PolicyBundle
from grantline.store.pickup import PickupBox

POD_LABELS = {"app.kubernetes.io/name": "grantline", "app.kubernetes.io/component": "broker"}


def kustomization() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return document


def deployment() -> dict[str, Any]:
    return k8s_resource("Deployment", "grantline")


def pod() -> dict[str, Any]:
    spec: dict[str, Any] = deployment()["spec"]["template"]["spec"]
    return spec


def broker() -> dict[str, Any]:
    container: dict[str, Any] = next(c for c in pod()["containers"] if c["name"] == "broker")
    return container


def generated_files(name: str) -> dict[str, Path]:
    generator = next(g for g in kustomization()["configMapGenerator"] if g["name"] == name)
    return {Path(f).name: K8S / f for f in generator["files"]}


def mounted_at(path: str) -> dict[str, Any]:
    mount = next(m for m in broker()["volumeMounts"] if m["mountPath"] == path)
    volume: dict[str, Any] = next(v for v in pod()["volumes"] if v["name"] == mount["name"])
    return volume


def test_the_kustomization_applies_every_manifest_and_no_secret() -> None:
    kinds = {document["kind"] for document in k8s_documents()}
    assert kinds == {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    assert "secrets.example.yaml" not in kustomization()["resources"]
    for files in (generated_files("grantline-policies"), generated_files("grantline-identity")):
        assert all(path.is_file() for path in files.values())


def test_several_replicas_and_a_budget_that_keeps_two() -> None:
    replicas = deployment()["spec"]["replicas"]
    budget = k8s_resource("PodDisruptionBudget")["spec"]
    assert replicas >= 3
    assert budget["minAvailable"] == 2
    assert budget["selector"]["matchLabels"] == POD_LABELS
    strategy = deployment()["spec"]["strategy"]["rollingUpdate"]
    assert strategy == {"maxUnavailable": 0, "maxSurge": 1}


def test_the_service_and_policies_select_the_broker_pods() -> None:
    labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert labels == POD_LABELS
    assert deployment()["spec"]["selector"]["matchLabels"] == POD_LABELS
    assert k8s_resource("Service")["spec"]["selector"] == POD_LABELS
    network = k8s_resource("NetworkPolicy")["spec"]
    assert network["podSelector"]["matchLabels"] == POD_LABELS
    assert network["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8400}]
    assert k8s_resource("Service")["spec"]["ports"][0]["targetPort"] == "http"


def test_probes_use_healthz_for_liveness_and_readyz_for_readiness() -> None:
    container = broker()
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "http"
    assert container["ports"] == [{"name": "http", "containerPort": 8400, "protocol": "TCP"}]


def test_every_container_has_requests_and_limits() -> None:
    for container in pod()["containers"] + pod()["initContainers"]:
        resources = container["resources"]
        assert {"cpu", "memory"} <= resources["requests"].keys()
        assert "memory" in resources["limits"]


def test_the_pod_runs_as_the_images_user_with_nothing_to_escalate() -> None:
    security = pod()["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == security["runAsGroup"] == security["fsGroup"] == IMAGE_UID
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod()["containers"] + pod()["initContainers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["runAsNonRoot"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
    assert pod()["automountServiceAccountToken"] is False
    assert k8s_resource("ServiceAccount")["automountServiceAccountToken"] is False
    labels = k8s_resource("Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_writable_paths_are_empty_dirs_and_home_is_in_memory() -> None:
    home = mounted_at("/var/lib/grantline")
    assert home["emptyDir"]["medium"] == "Memory"
    assert "emptyDir" in mounted_at("/tmp")  # noqa: S108 — a mount path in the manifest
    names = {v["name"] for v in pod()["volumes"]}
    for container in pod()["containers"] + pod()["initContainers"]:
        for mount in container["volumeMounts"]:
            assert mount["name"] in names


def test_service_links_cannot_leak_grantline_port_into_the_settings() -> None:
    # A Service named "grantline" would otherwise set GRANTLINE_PORT=tcp://10.x.y.z:8400.
    assert k8s_resource("Service")["metadata"]["name"] == "grantline"
    assert pod()["enableServiceLinks"] is False


def test_settings_come_from_the_config_map_and_secrets_by_reference_only() -> None:
    container = broker()
    assert container["envFrom"] == [{"configMapRef": {"name": "grantline-settings"}}]
    settings = k8s_resource("ConfigMap", "grantline-settings")["data"]
    names = set(settings) | {entry["name"] for entry in container["env"]}
    assert names <= settings_names(), names - settings_names()
    example = {
        document["metadata"]["name"]: document
        for document in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text())
    }
    for entry in container["env"]:
        reference = entry["valueFrom"]["secretKeyRef"]
        assert "value" not in entry
        assert reference["key"] in example[reference["name"]]["stringData"]
    assert settings["GRANTLINE_DEV_ISSUER"] == "false"
    assert settings["GRANTLINE_EMBEDDED_STORE"] == "false"
    assert settings["GRANTLINE_WORKERS"] == "1"


def test_every_replica_names_the_log_and_tokens_the_same_way() -> None:
    settings = k8s_resource("ConfigMap", "grantline-settings")["data"]
    assert settings["GRANTLINE_PUBLIC_URL"].startswith("https://")
    assert settings["GRANTLINE_LOG_ORIGIN"]


def k8s_settings(monkeypatch: pytest.MonkeyPatch, identity: Path) -> Settings:
    for name in list(os.environ):
        if name.startswith("GRANTLINE_"):
            monkeypatch.delenv(name)
    values = dict(k8s_resource("ConfigMap", "grantline-settings")["data"])
    values["GRANTLINE_TRUSTED_ISSUERS"] = str(identity / "trusted-issuers.json")
    values["GRANTLINE_POLICIES"] = str(K8S / "policies")
    values["GRANTLINE_REDIS_URL"] = "redis://grantline:x@valkey:6379/0"
    values.update({"GRANTLINE_VAULT_ROLE_ID": "r", "GRANTLINE_VAULT_SECRET_ID": "s"})
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_the_shipped_identity_config_map_refuses_to_start_until_the_cluster_keys_are_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    files = generated_files("grantline-identity")
    with pytest.raises(ConfigError) as raised:
        k8s_settings(monkeypatch, files["trusted-issuers.json"].parent)
    assert "GRANTLINE_TRUSTED_ISSUERS" in raised.value.message
    assert "no usable signing key" in raised.value.message
    # With the cluster's JWKS (kubectl get --raw /openid/v1/jwks) it starts.
    identity = tmp_path / "identity"
    identity.mkdir()
    shutil.copy(files["trusted-issuers.json"], identity)
    signer = LocalEd25519Signer.load_or_create(tmp_path / "sa.pem")
    jwk = {**signer.public_jwk(), "alg": "EdDSA"}
    issuers = json.loads((identity / "trusted-issuers.json").read_text())
    issuers[0]["algorithms"] = ["EdDSA"]
    (identity / "trusted-issuers.json").write_text(json.dumps(issuers))
    (identity / "cluster-jwks.json").write_text(json.dumps({"keys": [jwk]}))
    settings = k8s_settings(monkeypatch, identity)
    assert settings_rules.serving_problems(settings) == []


def test_the_policy_copies_are_the_shipped_policy() -> None:
    shipped = {p.name for p in (REPO / "policies").iterdir() if p.suffix in (".rego", ".json")}
    copies = generated_files("grantline-policies")
    assert set(copies) == shipped, "sync deploy/k8s/policies with policies/"
    for name, path in copies.items():
        assert path.read_bytes() == (REPO / "policies" / name).read_bytes(), (
            f"deploy/k8s/policies/{name} differs: cp policies/{name} deploy/k8s/policies/"
        )


def test_a_config_map_mounted_policy_loads_and_reloads_when_kubernetes_swaps_it(
    tmp_path: Path,
) -> None:
    # The kubelet's layout: NAME -> ..data/NAME, ..data -> ..<timestamp>/, swapped atomically.
    mounted = tmp_path / "policies"
    first = mounted / "..2026_01_01_00_00_00.1"
    first.mkdir(parents=True)
    for name, path in generated_files("grantline-policies").items():
        shutil.copy(path, first / name)
        (mounted / name).symlink_to(Path("..data") / name)
    (mounted / "..data").symlink_to(first.name)
    bundle = PolicyBundle.load(mounted)
    assert set(bundle.files) == set(generated_files("grantline-policies"))
    assert not bundle.changed_on_disk()
    second = mounted / "..2026_01_01_00_01_00.2"
    shutil.copytree(first, second)
    data = json.loads((second / "data.json").read_text())
    data["grantline"]["roles"]["db-read"]["max_ttl_seconds"] = 60
    (second / "data.json").write_text(json.dumps(data))
    (mounted / "..data_tmp").symlink_to(second.name)
    (mounted / "..data_tmp").rename(mounted / "..data")
    assert bundle.changed_on_disk()
    assert PolicyBundle.load(mounted).digest != bundle.digest


def test_the_init_container_gives_the_broker_its_shared_keys_owner_only(tmp_path: Path) -> None:
    init = next(c for c in pod()["initContainers"] if c["name"] == "keys")
    assert init["image"] == broker()["image"] == kustomization()["images"][0]["name"]
    keys_volume = next(v for v in pod()["volumes"] if v["name"] == "keys")
    assert keys_volume["secret"]["secretName"] == "grantline-keys"
    source = next(m for m in init["volumeMounts"] if m["name"] == "keys")["mountPath"]
    # The Secret's files, as the kubelet writes them with fsGroup: group-readable.
    secret = tmp_path / "secret"
    secret.mkdir()
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(secret / "log-signing.pem")],
        check=True,
    )
    shutil.copy(secret / "log-signing.pem", secret / "token-signing.pem")
    (secret / "pickup.key").write_bytes(os.urandom(32))
    for path in secret.iterdir():
        path.chmod(0o440)
    home = tmp_path / "home"
    home.mkdir()
    script = init["command"][-1].replace(source, str(secret))
    subprocess.run(
        [*init["command"][:-1], script],
        env={"PATH": "/usr/bin:/bin", "GRANTLINE_HOME": str(home)},
        check=True,
    )
    assert init["env"] == [{"name": "GRANTLINE_HOME", "value": "/var/lib/grantline"}]
    settings = Settings.model_construct(home=home)
    for key in ("log-signing.pem", "token-signing.pem", "pickup.key"):
        assert stat.S_IMODE((home / "keys" / key).stat().st_mode) == 0o600
    assert log_signer(settings).kid == token_signer(settings).kid
    PickupBox.load_or_create(settings.keys_dir / "pickup.key")


def test_the_example_workload_presents_a_projected_token_for_grantline() -> None:
    workload = yaml.safe_load((K8S / "examples" / "workload.yaml").read_text())
    volume = workload["spec"]["template"]["spec"]["volumes"][0]
    source = volume["projected"]["sources"][0]["serviceAccountToken"]
    assert source["audience"] == "grantline"
    assert source["expirationSeconds"] <= 3600
