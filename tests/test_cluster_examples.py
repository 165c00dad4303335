"""The cluster examples in examples/cluster/ are valid for the tools that read them.

They cannot run here (AWS, Kubernetes), so these tests check what can go stale: the
``ray up`` YAML against the schema Ray itself validates with, the RayJob manifest against
the fields of KubeRay's RayJob resource, and each ``talkit extract`` command they carry
against talkit's own CLI parser.
"""

from __future__ import annotations

import json
import re
import shlex
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "cluster"


@pytest.fixture(autouse=True)
def _examples_present() -> None:
    """The examples sit beside tests/ (a copy of the tests needs examples/ copied too)."""
    if not EXAMPLES.is_dir():
        pytest.fail(f"{EXAMPLES} not found: copy examples/ along with tests/")


# Fields of KubeRay's ray.io/v1 RayJob (ray-operator/config/crd/bases/ray.io_rayjobs.yaml)
# and of its RayCluster spec that the example may use.
RAYJOB_SPEC = {
    "entrypoint", "rayClusterSpec", "clusterSelector", "shutdownAfterJobFinishes",
    "ttlSecondsAfterFinished", "activeDeadlineSeconds", "runtimeEnvYAML", "submissionMode",
    "suspend", "entrypointNumCpus", "entrypointNumGpus", "entrypointResources", "jobId",
    "metadata", "submitterPodTemplate", "submitterConfig", "deletionPolicy",
}  # fmt: skip
RAYCLUSTER_SPEC = {
    "rayVersion", "headGroupSpec", "workerGroupSpecs", "enableInTreeAutoscaling",
    "autoscalerOptions", "suspend", "authOptions",
}  # fmt: skip
HEAD_GROUP = {"rayStartParams", "template", "serviceType", "enableIngress", "headService"}
WORKER_GROUP = {
    "groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams", "template",
    "scaleStrategy", "numOfHosts", "suspend", "idleTimeoutSeconds",
}  # fmt: skip


def _parse_extract(command: str) -> dict[str, Any]:
    """The options of a ``talkit extract ...`` command line, as talkit's CLI parses them."""
    import typer.main

    from talkit.cli import app

    args = shlex.split(command)
    assert args[:2] == ["talkit", "extract"], command
    extract = typer.main.get_command(app).commands["extract"]  # type: ignore[attr-defined]
    return dict(extract.make_context("extract", args[2:]).params)


def _commented_command(text: str) -> str:
    """The ``talkit extract`` command written in the file's comments (with \\ lines)."""
    lines = [ln.removeprefix("#").strip() for ln in text.splitlines() if ln.startswith("#")]
    start = next(i for i, ln in enumerate(lines) if ln.startswith("talkit extract"))
    command = []
    for line in lines[start:]:
        command.append(line.removesuffix("\\").strip())
        if not line.endswith("\\"):
            break
    return " ".join(command)


def test_ray_up_config_passes_rays_own_schema_and_installs_this_talkit() -> None:
    import jsonschema

    from talkit import __version__

    text = (EXAMPLES / "ray-up.yaml").read_text()
    config = yaml.safe_load(text)
    schema = json.loads((resources.files("ray.autoscaler") / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)  # what `ray up` checks first
    assert config["provider"]["type"] == "aws"
    assert config["head_node_type"] in config["available_node_types"]
    # The same talkit on every node, pinned to this version (the driver checks it).
    assert any(
        re.search(rf"pip install \S*talkit\S*=={re.escape(__version__)}\b", c)
        for c in config["setup_commands"]
    ), config["setup_commands"]
    # Every node type may read S3 (the workers read the videos).
    for node_type in config["available_node_types"].values():
        assert "IamInstanceProfile" in node_type["node_config"]
    params = _parse_extract(_commented_command(text))
    assert params["ray_address"] == "auto"
    assert params["videos"].startswith("s3://") and params["store"].startswith("s3://")
    mounted = set(config["file_mounts"])
    for value in params["checkpoint"]:  # on every node, at the path the driver names
        assert any(value.split("=", 1)[1].startswith(m + "/") for m in mounted), value


def test_rayjob_manifest_uses_rayjob_fields_and_runs_talkit_extract_on_the_cluster() -> None:
    from talkit import __version__

    job = yaml.safe_load((EXAMPLES / "rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert set(spec) <= RAYJOB_SPEC, set(spec) - RAYJOB_SPEC
    cluster = spec["rayClusterSpec"]
    assert set(cluster) <= RAYCLUSTER_SPEC, set(cluster) - RAYCLUSTER_SPEC
    assert set(cluster["headGroupSpec"]) <= HEAD_GROUP
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in cluster["workerGroupSpecs"]:
        assert set(group) <= WORKER_GROUP, set(group) - WORKER_GROUP
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    for group in groups:  # rayStartParams values are strings in the CRD
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())

    params = _parse_extract(" ".join(spec["entrypoint"].split()))
    assert params["ray_address"] == "auto"
    assert params["videos"].startswith("s3://") and params["store"].startswith("s3://")
    # Every pod gets the S3 secret and runs the same talkit image.
    containers = [c for g in groups for c in g["template"]["spec"]["containers"]]
    secrets = {e["secretRef"]["name"] for c in containers for e in c.get("envFrom", [])}
    assert len(secrets) == 1 and all(c.get("envFrom") for c in containers)
    assert len({c["image"] for c in containers}) == 1
    assert containers[0]["image"].endswith(f":{__version__}")


@pytest.mark.parametrize("name", ["ray-up.yaml", "rayjob.yaml"])
def test_examples_point_to_the_cluster_docs(name: str) -> None:
    assert "docs/cluster.md" in (EXAMPLES / name).read_text()
