"""deploy/: the Compose file and the Kubernetes manifests are valid (checked offline with
docker-compose and kubernetes-validate), agree with the image and deploy/config.yaml, and the
Compose topology (two gateways, one Redis, the same config file, secrets from the environment)
really holds its limits and cache across replicas, run here on loopback."""

import concurrent.futures
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from prism_helpers import UPSTREAM_KEY, assert_openai_error, chat_body, get, post
from redis_server import RedisServer

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
MANIFESTS = ["configmap.yaml", "secret.yaml", "deployment.yaml", "redis.yaml"]
CLIENT_KEY = "sk-prism-compose-client-key-0123"
IMAGE_USER = "10001:10001"  # the Dockerfile's USER


def seconds(text):
    text = str(text)
    for suffix, factor in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def deploy_config():
    return yaml.safe_load((DEPLOY / "config.yaml").read_text())


def stop_budget():
    server = deploy_config()["server"]
    return seconds(server["drain_delay"]) + seconds(server["shutdown_timeout"])


def compose_config(env):
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.fail("docker-compose is not installed: run scripts/install.sh", pytrace=False)
    return subprocess.run([tool, "-f", str(DEPLOY / "compose.yaml"), "config"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env})


def resolved_compose():
    result = compose_config({"OPENAI_API_KEY": UPSTREAM_KEY, "PRISM_CLIENT_KEY": CLIENT_KEY})
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_the_compose_file_is_valid_and_needs_its_secrets():
    services = resolved_compose()["services"]
    assert {"prism-a", "prism-b", "redis"} <= set(services)
    missing = compose_config({"OPENAI_API_KEY": "", "PRISM_CLIENT_KEY": ""})
    assert missing.returncode != 0 and "set OPENAI_API_KEY" in missing.stderr, missing.stderr


def test_compose_runs_the_replicas_as_the_image_does():
    services = resolved_compose()["services"]
    for name in ("prism-a", "prism-b"):
        service = services[name]
        assert service["user"] == IMAGE_USER
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert f"{DEPLOY / 'config.yaml'}:/app/config.yaml:ro" in service["volumes"]
        assert any(v.endswith(":/var/lib/prism:rw") for v in service["volumes"])
        assert seconds(service["stop_grace_period"]) >= stop_budget()
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        # Secrets arrive from the environment, not from the file.
        assert service["environment"]["PRISM_CLIENT_KEY"] == CLIENT_KEY
    assert "sk-" not in (DEPLOY / "config.yaml").read_text()


def kubernetes_validate(*paths):
    tool = shutil.which("kubernetes-validate")
    if tool is None:
        pytest.fail("kubernetes-validate is not installed: run scripts/install.sh", pytrace=False)
    return subprocess.run([tool, "--strict", *map(str, paths)], capture_output=True, text=True, timeout=120)


def test_kubernetes_manifests_validate_against_the_schemas(tmp_path):
    result = kubernetes_validate(*(KUBERNETES / name for name in MANIFESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    # The validator is a real check: a misspelt field fails it.
    broken = tmp_path / "deployment.yaml"
    broken.write_text((KUBERNETES / "deployment.yaml").read_text().replace("readinessProbe", "readynessProbe"))
    assert kubernetes_validate(broken).returncode != 0
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(MANIFESTS)


def kubernetes_documents(name):
    return [d for d in yaml.safe_load_all((KUBERNETES / name).read_text()) if d]


def test_the_kubernetes_deployment_is_hardened_and_probed():
    deployment = next(d for d in kubernetes_documents("deployment.yaml") if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert f'{pod["securityContext"]["runAsUser"]}:{pod["securityContext"]["runAsGroup"]}' == IMAGE_USER
    assert pod["terminationGracePeriodSeconds"] >= stop_budget()
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/prism", "/var/lib/prism"} <= mounts
    assert container["args"][-2:] == ["--config", "/etc/prism/config.yaml"]
    secret_keys = set(kubernetes_documents("secret.yaml")[0]["stringData"])
    assert {"OPENAI_API_KEY", "PRISM_CLIENT_KEY"} <= secret_keys


def test_the_configmap_is_deploy_config_and_loads(run_prism, tmp_path):
    configmap = kubernetes_documents("configmap.yaml")[0]
    assert configmap["data"]["config.yaml"] == (DEPLOY / "config.yaml").read_text(), \
        "deploy/kubernetes/configmap.yaml differs from deploy/config.yaml"
    path = tmp_path / "config.yaml"
    path.write_text(configmap["data"]["config.yaml"])
    result = run_prism("validate", "--config", str(path),
                       env={"OPENAI_API_KEY": UPSTREAM_KEY, "PRISM_CLIENT_KEY": CLIENT_KEY})
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr.lower(), result.stderr


def test_the_probe_paths_answer(gateway):
    gw = gateway({"providers": {"mock": {"type": "mock", "models": ["m"]}}})
    deployment = next(d for d in kubernetes_documents("deployment.yaml") if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert get(gw.url(container[probe]["httpGet"]["path"])).status == 200, probe


# ---- the Compose topology, for real on loopback -------------------------------------------------

@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def replica_environment(service, upstream, redis, **extra):
    """The environment Compose gives a replica, with the two addresses that differ on loopback:
    Redis (Compose's `redis` host name) and the upstream (the mock instead of api.openai.com)."""
    env = {k: str(v) for k, v in service["environment"].items()}
    env["REDIS_ADDRESS"] = redis.address
    env["OPENAI_BASE_URL"] = upstream.v1_url
    env.update(extra)
    return env


def test_two_replicas_on_the_compose_config_share_limits_and_cache(gateway, mock_upstream, redis):
    services = resolved_compose()["services"]
    config = (DEPLOY / "config.yaml").read_text()
    replicas = [gateway(config, env=replica_environment(services[name], mock_upstream, redis,
                                                         PRISM_GLOBAL_RPM=10))
                for name in ("prism-a", "prism-b")]
    auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
    for gw in replicas:
        assert get(gw.url("/readyz")).status == 200
        assert_openai_error(post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini")), 401)

    # The cache: an answer fetched through replica a is a hit on replica b.
    miss = post(replicas[0].v1 + "/chat/completions", chat_body("gpt-4o-mini", "cached across"), headers=auth)
    assert miss.status == 200 and miss.headers["x-prism-cache"] == "miss", miss.text
    upstream_seen = mock_upstream.chat_requests()
    assert upstream_seen and upstream_seen[-1].headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"

    def hit():
        return post(replicas[1].v1 + "/chat/completions", chat_body("gpt-4o-mini", "cached across"),
                    headers=auth).headers.get("x-prism-cache") == "hit"
    from prism_helpers import wait_until
    assert wait_until(hit, 5), "the answer cached through replica a was not a hit on replica b"

    # The global limit (10 a minute, two requests used above) holds exactly across both.
    def chat(i):
        gw = replicas[i % 2]
        return post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", f"limit {i}"), headers=auth).status
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(chat, range(24)))
    assert statuses.count(200) == 8 and statuses.count(429) == 16, statuses
