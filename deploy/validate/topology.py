"""Checks that deploy/compose.yaml and deploy/k8s describe one topology, and that every
Kubernetes manifest matches Kubernetes' own schemas. Run by deploy/validate.sh, which
gives it compose's normalised model (`docker compose config --format json`).

Each check prints what it found wrong; the exit status is 1 if any did. The rules are the
deployment's, in one place:

- the seven services of deploy/postgres/roles.sql run in both, each as
  `serve --services <name>` with its own database role, two replicas each (notify one,
  see SINGLE_REPLICA), the same memory, a readiness check on /readyz (and on Kubernetes a
  liveness probe on /healthz) and, on Kubernetes, a PodDisruptionBudget;
- RabbitMQ is three clustered nodes in both, with the same settings
  (deploy/rabbitmq/rabbitmq.conf and cluster.conf), pause_minority, and every AMQP_URL
  lists the three;
- PostgreSQL has a standby the services follow: every DATABASE_URL names the primary's
  address(es) with target_session_attrs=read-write, and the connections the pods may
  open fit in max_connections.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"

# Kubernetes releases whose schemas every manifest must satisfy (strict: no unknown
# field): an older one still offered by the large providers, and the newest the
# kubernetes-validate wheel ships.
KUBERNETES_VERSIONS = ["1.31.0", "latest"]
# Kinds from operators, whose schemas ship with the operator rather than with
# Kubernetes: checked by the topology rules below instead.
CUSTOM_RESOURCES = {("postgresql.cnpg.io/v1", "Cluster")}
# Files of deploy/k8s that kustomization.yaml leaves out on purpose: templates the
# operator fills in, and the Job that runs before each release.
NOT_KUSTOMIZED = {"kustomization.yaml", "migrate-job.yaml"}

# Services that run one replica, and why (both files say so too).
SINGLE_REPLICA = {
    "notify": "handles its queue in order; a second replica makes offers wait for their submission",
}
# The services whose processes run an outbox relay, one connection each (README.md,
# "Scaling out").
RELAYS = {"referrals", "directory", "matcher", "accounts"}
# Connections PostgreSQL keeps for itself beyond the pools: superuser_reserved_connections
# (3), replication and pg_auto_failover's keeper and health checks, an operator's psql.
RESERVED_CONNECTIONS = 12


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, what: str) -> None:
        self.items.append(f"{where}: {what}")

    def expect(self, ok: bool, where: str, what: str) -> bool:
        if not ok:
            self.add(where, what)
        return ok


# --- reading the files ----------------------------------------------------------------


def k8s_documents(path: Path) -> list[dict]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def conf_settings(text: str) -> dict[str, str]:
    """The `key = value` lines of a rabbitmq.conf, comments and blanks left out."""
    settings = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        settings[key.strip()] = value.strip()
    return settings


def quantity_bytes(value) -> int:
    """A memory quantity (Kubernetes `384Mi`, or compose's normalised bytes) in bytes."""
    text = str(value)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def cpu_millis(value) -> int:
    text = str(value)
    return int(text[:-1]) if text.endswith("m") else int(float(text) * 1000)


def labels_match(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def amqp_hosts(url: str) -> list[str]:
    return [urlsplit(part).hostname or "" for part in url.split(",")]


def database_url(url: str) -> tuple[str, list[str], dict]:
    """(user, [host:port…], query) of a libpq URL, multi-host included."""
    rest = url.split("://", 1)[1]
    authority, _, tail = rest.partition("/")
    userinfo, _, hosts = authority.rpartition("@")
    query = parse_qs(tail.partition("?")[2])
    return userinfo.split(":", 1)[0], hosts.split(","), query


def services_of_roles_sql() -> list[str]:
    text = (DEPLOY / "postgres" / "roles.sql").read_text()
    return sorted(set(re.findall(r"aiguillage serve --services (\w+)", text)))


def max_connections_of_image() -> int:
    text = (DEPLOY / "postgres" / "Dockerfile").read_text()
    return int(re.search(r"max_connections = (\d+)", text).group(1))


# --- Kubernetes schemas and kustomization -----------------------------------------------


def check_schemas(problems: Problems, files: dict[str, list[dict]], label: str) -> int:
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    versions = [kubernetes_validate.utils.latest_version() if v == "latest" else v for v in KUBERNETES_VERSIONS]
    checked = 0
    for name, docs in files.items():
        for doc in docs:
            kind, api = doc.get("kind"), doc.get("apiVersion")
            where = f"{name} {kind}/{doc.get('metadata', {}).get('name')}"
            if (api, kind) in CUSTOM_RESOURCES:
                continue
            for version in versions:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except SchemaNotFoundError:
                    problems.add(where, f"no Kubernetes {version} schema for {api} {kind}")
                except kubernetes_validate.ValidationError as e:
                    path = ".".join(str(p) for p in e.path)
                    problems.add(where, f"Kubernetes {version} schema: {path}: {e.message}")
            checked += 1
    print(f"  {label}: {checked} Kubernetes objects checked against the schemas of {', '.join(versions)} (strict)")
    return checked


def check_kustomization(problems: Problems, rendered: Path | None) -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = kustomization.get("resources", [])
    present = sorted(
        p.name for p in K8S.glob("*.yaml") if p.name not in NOT_KUSTOMIZED and not p.name.endswith(".example.yaml")
    )
    problems.expect(
        sorted(listed) == present,
        "k8s/kustomization.yaml",
        f"resources {sorted(listed)} but the folder holds {present}",
    )
    problems.expect(len(listed) == len(set(listed)), "k8s/kustomization.yaml", "a resource is listed twice")
    if rendered is None:
        return
    docs = k8s_documents(rendered)
    expected = sum(len(k8s_documents(K8S / name)) for name in listed if (K8S / name).exists())
    problems.expect(
        len(docs) == expected, "kustomize build", f"{len(docs)} objects rendered, {expected} in the listed files"
    )
    tag = next((i.get("newTag") for i in kustomization.get("images", []) if i.get("name") == "aiguillage"), None)
    for doc in docs:
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []):
            image = container.get("image", "")
            if image.split(":")[0] == "aiguillage":
                problems.expect(
                    image == f"aiguillage:{tag}",
                    f"kustomize build {doc['kind']}/{doc['metadata']['name']}",
                    f"image {image}, expected aiguillage:{tag} from kustomization.yaml",
                )
    print(f"  kustomize build: {len(docs)} objects")


# --- the services ------------------------------------------------------------------------


def compose_services(compose: dict) -> dict[str, dict]:
    found = {}
    for name, svc in compose["services"].items():
        command = svc.get("command") or []
        if command[:2] == ["serve", "--services"]:
            found[command[2]] = svc | {"_name": name}
    return found


def k8s_by_kind(files: dict[str, list[dict]], kind: str) -> list[dict]:
    return [doc for docs in files.values() for doc in docs if doc.get("kind") == kind]


def k8s_services(files: dict[str, list[dict]]) -> dict[str, dict]:
    found = {}
    for dep in k8s_by_kind(files, "Deployment"):
        container = dep["spec"]["template"]["spec"]["containers"][0]
        args = container.get("args") or []
        if args[:2] == ["serve", "--services"]:
            found[args[2]] = dep
    return found


def k8s_replicas(files, dep: dict) -> tuple[int, int]:
    """(replicas at least, replicas at most), the HPA's when one targets the Deployment."""
    for hpa in k8s_by_kind(files, "HorizontalPodAutoscaler"):
        if hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]:
            return hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
    replicas = dep["spec"].get("replicas", 1)
    return replicas, replicas


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def check_services(problems: Problems, compose: dict, files, secret: dict) -> None:
    expected = services_of_roles_sql()
    in_compose = compose_services(compose)
    in_k8s = k8s_services(files)
    problems.expect(len(expected) == 7, "postgres/roles.sql", f"lists {expected}, expected the seven services")
    problems.expect(sorted(in_compose) == expected, "compose.yaml", f"serves {sorted(in_compose)}, roles.sql {expected}")
    problems.expect(sorted(in_k8s) == expected, "k8s", f"Deployments serve {sorted(in_k8s)}, roles.sql {expected}")

    data_nodes = sorted(
        f"{name}:5432" for name, svc in compose["services"].items()
        if (svc.get("environment") or {}).get("PGAF_ROLE") == "postgres"
    )
    rabbit_nodes = sorted(
        name for name, svc in compose["services"].items() if svc.get("image", "").startswith("rabbitmq:")
    )
    pdbs = k8s_by_kind(files, "PodDisruptionBudget")
    k8s_svcs = k8s_by_kind(files, "Service")

    for name in expected:
        c, d = in_compose.get(name), in_k8s.get(name)
        if c is None or d is None:
            continue
        cw, kw = f"compose.yaml {c['_name']}", f"k8s Deployment/{d['metadata']['name']}"
        problems.expect(c["_name"] == name, cw, f"runs --services {name} under another name")
        env = c.get("environment") or {}

        # Health: readiness on /readyz in both, liveness on /healthz where there is one.
        test = " ".join(c.get("healthcheck", {}).get("test") or [])
        problems.expect(
            "GET /readyz " in test and not c.get("healthcheck", {}).get("disable"),
            cw, "its health check must ask /readyz",
        )
        container = d["spec"]["template"]["spec"]["containers"][0]
        readiness = container.get("readinessProbe", {}).get("httpGet", {}).get("path")
        liveness = container.get("livenessProbe", {}).get("httpGet", {}).get("path")
        problems.expect(readiness == "/readyz", kw, f"readinessProbe on {readiness}, expected /readyz")
        problems.expect(liveness == "/healthz", kw, f"livenessProbe on {liveness}, expected /healthz")

        # Its own database role, through the address that follows the primary.
        user, hosts, query = database_url(env.get("DATABASE_URL", "x://"))
        problems.expect(user == f"aiguillage_{name}", cw, f"DATABASE_URL logs in as {user}")
        problems.expect(
            sorted(hosts) == data_nodes and len(data_nodes) == 2,
            cw, f"DATABASE_URL names {hosts}, the data nodes are {data_nodes}",
        )
        problems.expect(
            query.get("target_session_attrs") == ["read-write"], cw, "DATABASE_URL lacks target_session_attrs=read-write"
        )
        kenv = env_of(container)
        key = kenv.get("DATABASE_URL", {}).get("valueFrom", {}).get("secretKeyRef", {}).get("key")
        problems.expect(key == f"{name}-database-url", kw, f"DATABASE_URL from Secret key {key}")
        if key in secret:
            user, _, query = database_url(secret[key])
            problems.expect(user == f"aiguillage_{name}", f"k8s secret.example.yaml {key}", f"logs in as {user}")
            problems.expect(
                query.get("target_session_attrs") == ["read-write"],
                f"k8s secret.example.yaml {key}", "lacks target_session_attrs=read-write",
            )
        else:
            problems.add(kw, f"Secret key {key} is not in secret.example.yaml")

        # Every broker node.
        problems.expect(
            sorted(amqp_hosts(env.get("AMQP_URL", ""))) == rabbit_nodes and len(rabbit_nodes) == 3,
            cw, f"AMQP_URL names {amqp_hosts(env.get('AMQP_URL', ''))}, the nodes are {rabbit_nodes}",
        )
        amqp_key = kenv.get("AMQP_URL", {}).get("valueFrom", {}).get("secretKeyRef", {}).get("key")
        problems.expect(amqp_key == "amqp-url", kw, f"AMQP_URL from Secret key {amqp_key}")

        # The master key reaches the services that hold personal data only.
        holds_personal_data = name in {"referrals", "accounts"}
        problems.expect(
            ("AIGUILLAGE_MASTER_KEY" in env) == holds_personal_data, cw,
            "the master key goes to referrals and accounts only",
        )
        problems.expect(
            ("AIGUILLAGE_MASTER_KEY" in kenv) == holds_personal_data, kw,
            "the master key goes to referrals and accounts only",
        )

        # Replicas: the same in both, two or more unless the service says why not.
        c_replicas = (c.get("deploy") or {}).get("replicas", 1)
        k_min, _ = k8s_replicas(files, d)
        problems.expect(c_replicas == k_min, kw, f"{k_min} replicas (at least), compose {c_replicas}")
        if name in SINGLE_REPLICA:
            problems.expect(c_replicas == 1, cw, f"runs one replica: {SINGLE_REPLICA[name]}")
        else:
            problems.expect(c_replicas >= 2, cw, f"{c_replicas} replica(s): every service runs two or more")
            problems.expect(k_min >= 2, kw, f"{k_min} replica(s): every service runs two or more")

        # Resources: requests and limits on Kubernetes; the same memory in compose.
        resources = container.get("resources", {})
        requests, limits = resources.get("requests", {}), resources.get("limits", {})
        if problems.expect(
            all(k in requests for k in ("cpu", "memory")) and all(k in limits for k in ("cpu", "memory")),
            kw, "needs cpu and memory requests and limits",
        ):
            c_res = (c.get("deploy") or {}).get("resources", {})
            c_req = (c_res.get("reservations") or {}).get("memory")
            c_lim = (c_res.get("limits") or {}).get("memory")
            problems.expect(
                c_req is not None and quantity_bytes(c_req) == quantity_bytes(requests["memory"]),
                cw, f"memory reservation {c_req} bytes, k8s requests {requests['memory']}",
            )
            problems.expect(
                c_lim is not None and quantity_bytes(c_lim) == quantity_bytes(limits["memory"]),
                cw, f"memory limit {c_lim} bytes, k8s limits {limits['memory']}",
            )
            c_cpus = (c_res.get("limits") or {}).get("cpus")
            problems.expect(
                c_cpus is not None and cpu_millis(c_cpus) == cpu_millis(limits["cpu"]),
                cw, f"cpus limit {c_cpus}, k8s limits {limits['cpu']}",
            )

        # A disruption budget and a Service that select this Deployment's pods.
        pod_labels = d["spec"]["template"]["metadata"]["labels"]
        budgets = [p for p in pdbs if labels_match(p["spec"].get("selector", {}).get("matchLabels", {}), pod_labels)]
        if problems.expect(len(budgets) == 1, kw, f"{len(budgets)} PodDisruptionBudgets select its pods, expected 1"):
            spec = budgets[0]["spec"]
            problems.expect(
                "maxUnavailable" in spec or (spec.get("minAvailable", 0) < k_min),
                kw, "its PodDisruptionBudget would block every drain",
            )
        problems.expect(
            any(labels_match(s["spec"].get("selector", {}), pod_labels) for s in k8s_svcs),
            kw, "no Service selects its pods",
        )
    print(f"  the seven services ({', '.join(expected)}): compose and k8s agree")


# --- RabbitMQ --------------------------------------------------------------------------


def check_rabbitmq(problems: Problems, compose: dict, files, secret: dict) -> None:
    nodes = {n: s for n, s in compose["services"].items() if s.get("image", "").startswith("rabbitmq:")}
    problems.expect(len(nodes) == 3, "compose.yaml", f"{len(nodes)} RabbitMQ nodes, expected 3")
    shared = conf_settings((DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text())
    cluster = conf_settings((DEPLOY / "rabbitmq" / "cluster.conf").read_text())

    # compose: each node mounts the same files and is named in cluster.conf.
    names = set()
    for name, svc in nodes.items():
        mounts = {v.get("target"): v.get("source", "") for v in svc.get("volumes", [])}
        for target, source in {
            "/etc/rabbitmq/conf.d/20-aiguillage.conf": "rabbitmq/rabbitmq.conf",
            "/etc/rabbitmq/conf.d/30-cluster.conf": "rabbitmq/cluster.conf",
            "/etc/rabbitmq/definitions.json": "rabbitmq/definitions.json",
        }.items():
            problems.expect(
                mounts.get(target, "").endswith(source), f"compose.yaml {name}", f"{target} must be {source}"
            )
        problems.expect(bool(svc.get("hostname")), f"compose.yaml {name}", "needs a fixed hostname (its node name)")
        names.add(f"rabbit@{svc.get('hostname')}")
    listed = {v for k, v in cluster.items() if k.startswith("cluster_formation.classic_config.nodes.")}
    problems.expect(
        cluster.get("cluster_formation.peer_discovery_backend") == "classic_config" and listed == names,
        "rabbitmq/cluster.conf", f"classic_config lists {sorted(listed)}, compose's nodes are {sorted(names)}",
    )
    problems.expect(
        cluster.get("cluster_partition_handling") == "pause_minority",
        "rabbitmq/cluster.conf", "cluster_partition_handling must be pause_minority",
    )

    # Kubernetes: a StatefulSet of 3 with the same settings and Kubernetes peer discovery.
    sets = [s for s in k8s_by_kind(files, "StatefulSet") if s["metadata"]["name"] == "rabbitmq"]
    if not problems.expect(len(sets) == 1, "k8s", "no StatefulSet rabbitmq"):
        return
    sts = sets[0]
    where = "k8s StatefulSet/rabbitmq"
    problems.expect(sts["spec"].get("replicas") == 3, where, f"{sts['spec'].get('replicas')} replicas, expected 3")
    pod = sts["spec"]["template"]
    container = pod["spec"]["containers"][0]
    images = {c["image"] for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", [])}
    problems.expect(
        images == {s["image"] for s in nodes.values()}, where, f"images {sorted(images)}, compose runs "
        f"{sorted({s['image'] for s in nodes.values()})}",
    )
    headless = [
        s for s in k8s_by_kind(files, "Service")
        if s["metadata"]["name"] == sts["spec"]["serviceName"]
    ]
    if problems.expect(len(headless) == 1, where, f"no Service {sts['spec']['serviceName']} (serviceName)"):
        spec = headless[0]["spec"]
        problems.expect(
            spec.get("clusterIP") == "None" and spec.get("publishNotReadyAddresses") is True
            and labels_match(spec.get("selector", {}), pod["metadata"]["labels"]),
            f"k8s Service/{headless[0]['metadata']['name']}",
            "must be headless, publish pods before they are ready, and select the nodes",
        )
    configs = [c for c in k8s_by_kind(files, "ConfigMap") if c["metadata"]["name"] == "rabbitmq-config"]
    if problems.expect(len(configs) == 1, "k8s", "no ConfigMap rabbitmq-config"):
        data = configs[0]["data"]
        k8s_shared = conf_settings(data.get("20-aiguillage.conf", ""))
        problems.expect(
            k8s_shared == shared, "k8s ConfigMap/rabbitmq-config 20-aiguillage.conf",
            f"differs from rabbitmq/rabbitmq.conf: {sorted(set(k8s_shared.items()) ^ set(shared.items()))}",
        )
        k8s_cluster = conf_settings(data.get("30-cluster.conf", ""))
        problems.expect(
            k8s_cluster.get("cluster_formation.peer_discovery_backend") in {"k8s", "rabbit_peer_discovery_k8s"},
            "k8s ConfigMap/rabbitmq-config 30-cluster.conf", "peer discovery must be k8s",
        )

        def common(settings):
            return {k: v for k, v in settings.items() if not k.startswith("cluster_formation.")}

        problems.expect(
            common(k8s_cluster) == common(cluster), "k8s ConfigMap/rabbitmq-config 30-cluster.conf",
            f"differs from rabbitmq/cluster.conf: {sorted(set(common(k8s_cluster).items()) ^ set(common(cluster).items()))}",
        )
        problems.expect(
            "rabbitmq_peer_discovery_k8s" in data.get("enabled_plugins", ""),
            "k8s ConfigMap/rabbitmq-config", "enabled_plugins lacks rabbitmq_peer_discovery_k8s",
        )
    budgets = [
        p for p in k8s_by_kind(files, "PodDisruptionBudget")
        if labels_match(p["spec"].get("selector", {}).get("matchLabels", {}), pod["metadata"]["labels"])
    ]
    problems.expect(
        len(budgets) == 1 and budgets[0]["spec"].get("maxUnavailable") == 1,
        where, "needs one PodDisruptionBudget with maxUnavailable: 1",
    )
    c_limit = (next(iter(nodes.values()), {}).get("deploy") or {}).get("resources", {}).get("limits", {}).get("memory")
    k_limit = container.get("resources", {}).get("limits", {}).get("memory")
    problems.expect(
        c_limit is not None and k_limit is not None and quantity_bytes(c_limit) == quantity_bytes(k_limit),
        where, f"memory limit {k_limit}, compose {c_limit} bytes",
    )
    namespace = sts["metadata"]["namespace"]
    pods = sorted(f"{sts['metadata']['name']}-{i}.{sts['spec']['serviceName']}.{namespace}.svc" for i in range(3))
    for key in ("amqp-url", "amqp-operator-url"):
        problems.expect(
            sorted(amqp_hosts(secret.get(key, ""))) == pods,
            f"k8s secret.example.yaml {key}", f"names {amqp_hosts(secret.get(key, ''))}, the nodes are {pods}",
        )
    print("  RabbitMQ: three nodes in both, same settings, every AMQP_URL lists the three")


# --- PostgreSQL and connections ----------------------------------------------------------


def check_postgres(problems: Problems, compose: dict, files) -> None:
    services = compose["services"]
    roles = {n: (s.get("environment") or {}).get("PGAF_ROLE") for n, s in services.items()}
    monitors = sorted(n for n, r in roles.items() if r == "monitor")
    data = sorted(n for n, r in roles.items() if r == "postgres")
    problems.expect(len(monitors) == 1 and len(data) == 2, "compose.yaml", f"monitor {monitors}, data nodes {data}")
    for name in data:
        env = services[name].get("environment") or {}
        problems.expect(
            env.get("PGAF_MONITOR_HOST") in monitors, f"compose.yaml {name}", "must register with the monitor"
        )
    one_shot = services.get("postgres-roles", {})
    env = one_shot.get("environment") or {}
    problems.expect(
        sorted(env.get("PGHOST", "").split(",")) == data and env.get("PGTARGETSESSIONATTRS") == "read-write",
        "compose.yaml postgres-roles", "must reach the primary among the data nodes (PGHOST, read-write)",
    )
    migrate = services.get("migrate", {})
    problems.expect(
        (migrate.get("depends_on") or {}).get("postgres-roles", {}).get("condition")
        == "service_completed_successfully",
        "compose.yaml migrate", "must wait for postgres-roles",
    )
    clusters = [d for d in k8s_documents(K8S / "postgres.example.yaml") if d.get("kind") == "Cluster"]
    if problems.expect(len(clusters) == 1, "k8s/postgres.example.yaml", "expected one Cluster"):
        spec = clusters[0]["spec"]
        sync = spec.get("postgresql", {}).get("synchronous", {})
        problems.expect(spec.get("instances", 0) >= 2, "k8s/postgres.example.yaml", "needs a standby (instances >= 2)")
        problems.expect(sync.get("number", 0) >= 1, "k8s/postgres.example.yaml", "needs a synchronous standby")
    print(f"  PostgreSQL: compose monitor {monitors[0] if monitors else '?'}, nodes {', '.join(data)}; "
          "k8s a primary and a synchronous standby")


def check_connections(problems: Problems, compose: dict, files) -> None:
    """Every pool at its fullest, plus a relay connection each where one runs, must fit."""
    services = compose_services(compose)
    total = 0
    for name, svc in services.items():
        replicas = (svc.get("deploy") or {}).get("replicas", 1)
        pool = int(svc["environment"]["AIGUILLAGE_DB_POOL_SIZE"])
        total += replicas * (pool + (1 if name in RELAYS else 0))
    total += int(compose["services"]["migrate"]["environment"]["AIGUILLAGE_DB_POOL_SIZE"])
    allowed = max_connections_of_image() - RESERVED_CONNECTIONS
    problems.expect(
        total <= allowed, "compose.yaml",
        f"up to {total} database connections, max_connections leaves {allowed} (postgres/Dockerfile)",
    )

    config = next(c for c in k8s_by_kind(files, "ConfigMap") if c["metadata"]["name"] == "aiguillage-config")
    pool = int(config["data"]["AIGUILLAGE_DB_POOL_SIZE"])
    k_total = 0
    for name, dep in k8s_services(files).items():
        _, most = k8s_replicas(files, dep)
        k_total += most * (pool + (1 if name in RELAYS else 0))
    job = next(j for j in k8s_by_kind(files, "Job") if j["metadata"]["name"] == "aiguillage-migrate")
    k_total += int(env_of(job["spec"]["template"]["spec"]["containers"][0])["AIGUILLAGE_DB_POOL_SIZE"]["value"])
    cluster = next(d for d in k8s_documents(K8S / "postgres.example.yaml") if d.get("kind") == "Cluster")
    k_allowed = int(cluster["spec"]["postgresql"]["parameters"]["max_connections"]) - RESERVED_CONNECTIONS
    problems.expect(
        k_total <= k_allowed, "k8s",
        f"up to {k_total} database connections, max_connections leaves {k_allowed} (postgres.example.yaml)",
    )
    print(f"  database connections at most: compose {total} of {allowed}, k8s {k_total} of {k_allowed}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compose-json", type=Path, required=True)
    parser.add_argument("--rendered", type=Path, help="`kustomize build deploy/k8s` output, when a tool made one")
    args = parser.parse_args()

    compose = json.loads(args.compose_json.read_text())
    files = {p.name: k8s_documents(p) for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"}
    secrets = [d for d in files.get("secret.example.yaml", []) if d["metadata"]["name"] == "aiguillage-secrets"]
    secret = secrets[0].get("stringData", {}) if secrets else {}

    problems = Problems()
    check_schemas(problems, files, "deploy/k8s/*.yaml")
    if args.rendered:
        check_schemas(problems, {"kustomize build": k8s_documents(args.rendered)}, "kustomize build")
    check_kustomization(problems, args.rendered)
    check_services(problems, compose, files, secret)
    check_rabbitmq(problems, compose, files, secret)
    check_postgres(problems, compose, files)
    check_connections(problems, compose, files)

    for item in problems.items:
        print(f"  FAILED {item}", file=sys.stderr)
    return 1 if problems.items else 0


if __name__ == "__main__":
    sys.exit(main())
