#!/usr/bin/env python3
"""Checks the deployment files that can be checked without a Docker engine or a cluster.

- every YAML file of the repository's deployment (compose files, deploy/) parses;
- every file or directory a kustomization names exists (a directory holds a kustomization);
- every file a compose file mounts exists;
- each overlay renders with `kubectl kustomize` when kubectl is installed;
- both compose files pass `docker-compose config -q` when docker-compose is installed;
- PostgreSQL and NATS are published on 127.0.0.1 only;
- each compose service holds only its own secrets, and ingest shares no network with PostgreSQL.
"""

import glob
import os
import shutil
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPOSE = ["docker-compose.yml", "docker-compose.cluster.yml"]
problems = []


def load(path):
    try:
        with open(path) as f:
            return list(yaml.safe_load_all(f))
    except Exception as e:  # noqa: BLE001 - any parse error is a finding
        problems.append(f"{path}: does not parse: {e}")
        return []


def check_kustomization(path):
    base = os.path.dirname(path)
    for doc in load(path):
        names = list(doc.get("resources", []))
        for p in doc.get("patches", []):
            if "path" in p:
                names.append(p["path"])
        for gen in doc.get("configMapGenerator", []) + doc.get("secretGenerator", []):
            names += gen.get("envs", []) + [f.split("=")[-1] for f in gen.get("files", [])]
        for name in names:
            target = os.path.normpath(os.path.join(base, name))
            if os.path.isdir(target):
                if not any(os.path.exists(os.path.join(target, k)) for k in ("kustomization.yaml", "kustomization.yml", "Kustomization")):
                    problems.append(f"{path}: {name} is a directory without a kustomization")
            elif not os.path.isfile(target):
                problems.append(f"{path}: {name} does not exist")


# Services that hold the data: published on the host's loopback only, never on every address.
PRIVATE = ("postgres", "nats")


def check_compose(path):
    for doc in load(path):
        for service, spec in (doc.get("services") or {}).items():
            if service.startswith(PRIVATE):
                for port in spec.get("ports", []):
                    if not str(port).startswith("127.0.0.1:"):
                        problems.append(f"{path}: service {service} publishes {port} beyond 127.0.0.1")
            for volume in spec.get("volumes", []):
                source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
                if source.startswith(".") and not os.path.exists(os.path.join(ROOT, source)):
                    problems.append(f"{path}: service {service} mounts {source}, which does not exist")
        check_secrets(path, doc.get("services") or {})
    if shutil.which("docker-compose"):
        run(["docker-compose", "-f", path, "config", "-q"])


# What a service that runs `command` must not be given: ingest faces the internet and needs
# neither the database nor the API's keys; nothing but ingest signs, so nothing else holds
# the webhook secret.
FORBIDDEN = {
    "ingest": ("DATABASE_URL", "API_DATABASE_URL", "API_KEYS", "API_CURSOR_SECRET"),
    "projector": ("SHOWPASS_WEBHOOK_SECRET", "SHOWPASS_ENDPOINTS", "API_KEYS"),
    "api": ("SHOWPASS_WEBHOOK_SECRET", "SHOWPASS_ENDPOINTS", "API_DATABASE_URL"),
    "migrate": ("SHOWPASS_WEBHOOK_SECRET", "SHOWPASS_ENDPOINTS", "API_KEYS"),
}


def check_secrets(path, services):
    postgres_networks = set((services.get("postgres") or {}).get("networks") or ["default"])
    for service, spec in services.items():
        command = (spec.get("command") or [None])[0]
        env = spec.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        for name in FORBIDDEN.get(command, ()):
            if name in env:
                problems.append(f"{path}: service {service} ({command}) is given {name}")
        if command == "ingest":
            shared = set(spec.get("networks") or ["default"]) & postgres_networks
            if shared:
                problems.append(f"{path}: service {service} shares network {shared} with postgres")


def run(cmd):
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        problems.append(f"{' '.join(cmd)} failed:\n{done.stderr.strip()}")
    return done.stdout


def main():
    os.chdir(ROOT)
    files = COMPOSE + sorted(glob.glob("deploy/**/*.y*ml", recursive=True))
    for path in files:
        load(path)
    for path in COMPOSE:
        check_compose(path)
    kustomizations = sorted(glob.glob("deploy/**/kustomization.yaml", recursive=True))
    for path in kustomizations:
        check_kustomization(path)
    if shutil.which("kubectl"):
        for overlay in sorted(glob.glob("deploy/k8s/overlays/*/")):
            rendered = run(["kubectl", "kustomize", overlay])
            kinds = [d.get("kind") for d in yaml.safe_load_all(rendered) if d]
            for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "Cluster"):
                if kind not in kinds:
                    problems.append(f"{overlay} renders no {kind}")
    else:
        print("kubectl not installed: overlays not rendered")
    for p in problems:
        print(f"deploy check: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"deploy check: {len(files)} YAML files, {len(kustomizations)} kustomizations, {len(COMPOSE)} compose files: ok")


main()
