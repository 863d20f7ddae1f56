#!/usr/bin/env python3
"""Checks of deploy/: run by scripts/check-deploy.sh (which installs the tools).

Groups (--only GROUP, repeatable; default all):
  docker   deploy/Dockerfile: hadolint, the structure the image relies on
           (multi-stage, --release --locked, non-root numeric USER, exec-form
           HEALTHCHECK through `gateway --probe` on the admin port, EXPOSE 8080
           8001), the files it copies exist, its default config is valid.
  compose  deploy/compose.yaml: the Compose Specification's JSON schema, the
           files it mounts exist, the mounted gateway config passes
           `gateway --check-config` with the environment compose gives it,
           HAProxy / Prometheus / Grafana / collector configs name the
           services and ports that exist; no credential of the gateway has a
           default (compose refuses to start without it), Redis requires the
           password the replicas use.
  k8s      deploy/k8s/**/*.yaml: Kubernetes schemas (kubernetes-validate,
           strict: unknown fields fail), Prometheus Operator kinds against
           their CRD schema, and the wiring (see check_objects and
           check_hardening); no Secret ships, the README's command that
           creates it generates the admin token, pepper and Redis password.
  helm     deploy/helm/ai-gateway: helm lint --strict, then every rendering
           (default values and ci/*-values.yaml) checked like k8s; values
           that must be refused (short grace, both monitors, no Redis) fail
           the render; generated secrets are random and the secret and
           NetworkPolicy values do what they say.
  selftest copies of deploy/ with one thing broken each: every one must make
           its group fail (proves the checks check).

Exit 0 when every check passed, 1 otherwise; the last line reads
"deploy: N passed, N failed".
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
# Kubernetes versions the manifests are validated against: the oldest the
# chart supports (native preStop sleep) and the newest kubernetes-validate knows.
K8S_MIN = "1.30"
# how long the gateway may still run after the grace, at most: quota
# settlements 5 s, telemetry flush 5 s (gateway/src/lib.rs), runtime stop 2 s
# and the final flush 5 s (gateway/src/main.rs)
EXIT_FLUSH_S = 20
ENV_REF = re.compile(r"\$\{([A-Za-z0-9_]+)(:-[^}]*)?\}")
# compose's own interpolation: ${V}, ${V:-default}, ${V-default}, ${V:?error}, ${V?error}
COMPOSE_REF = re.compile(r"\$\{([A-Za-z0-9_]+)(?:(:?[-?])([^}]*))?\}")
# secrets no deploy file may ship a value for: generated (chart), required
# (compose) or made by the documented command (plain manifests)
GENERATED_SECRETS = ("GATEWAY_ADMIN_TOKEN", "GATEWAY_KEY_PEPPER", "REDIS_PASSWORD")
# the bundled Redis's start script (its argv 0..2): tests/tests/deploy_redis.rs runs it
REDIS_START_FILE = "deploy/k8s/20-redis.yaml"


def default_k8s_versions() -> list[str]:
    """The oldest supported and the newest kubernetes-validate has schemas for."""
    from kubernetes_validate.utils import latest_version, major_minor

    return [K8S_MIN, major_minor(latest_version())]


class Fail(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise Fail(msg)


class Ctx:
    def __init__(self, root: Path, args):
        self.root = root
        self.deploy = root / "deploy"
        self.gateway = args.gateway
        self.helm = args.helm
        self.hadolint = args.hadolint
        self.k8s_versions = args.k8s_version or default_k8s_versions()
        self.verbose = args.verbose
        self.passed = 0
        self.failed = 0
        self.notes: list[str] = []

    def run(self, name, fn, *a):
        try:
            fn(*a)
            self.passed += 1
            print(f"  ok    {name}")
            return True
        except Fail as e:
            self.failed += 1
            print(f"  FAIL  {name}\n        " + str(e).replace("\n", "\n        "))
            return False
        except Exception as e:  # a crash of a check is a failure too
            self.failed += 1
            print(f"  FAIL  {name}: {type(e).__name__}: {e}")
            if self.verbose:
                traceback.print_exc()
            return False

    def note(self, msg):
        self.notes.append(msg)
        print(f"  note  {msg}")


# ---------------------------------------------------------------- helpers


def load_docs(path: Path) -> list[dict]:
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for d in docs:
        need(isinstance(d, dict), f"{path}: a document is not a mapping")
    return docs


def env_refs(text: str) -> dict[str, str | None]:
    """${NAME} -> None (required), ${NAME:-x} -> 'x'."""
    out: dict[str, str | None] = {}
    for m in ENV_REF.finditer(text):
        name, default = m.group(1), m.group(2)
        if default is None:
            out[name] = None
        elif out.get(name, "") is not None or name not in out:
            out.setdefault(name, default[2:])
    return out


def check_config(ctx: Ctx, text: str, env: dict[str, str], label: str) -> dict:
    """`gateway --check-config` on `text` with exactly `env` (plus PATH); returns the parsed config."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "gateway.yaml"
        p.write_text(text)
        full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "RUST_LOG": "error"}
        full.update(env)
        r = subprocess.run(
            [ctx.gateway, "--check-config", str(p)],
            env=full,
            capture_output=True,
            text=True,
            timeout=60,
        )
        need(
            r.returncode == 0,
            f"{label}: gateway --check-config exited {r.returncode}:\n{r.stdout}{r.stderr}",
        )
        if ctx.verbose:
            print(r.stdout.rstrip())
    return yaml.safe_load(text)


def host_port(addr: str) -> int:
    return int(str(addr).rsplit(":", 1)[1])


def dummy_env(names, known: dict[str, str]) -> dict[str, str]:
    env = {}
    for n in names:
        env[n] = known.get(n, f"ci-dummy-{n.lower()}-0123456789")
    return env


# ---------------------------------------------------------------- docker


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    lines, cur = [], ""
    for raw in path.read_text().splitlines():
        s = raw.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        word, _, rest = cur.partition(" ")
        lines.append((word.upper(), rest.strip()))
        cur = ""
    return lines


def docker_hadolint(ctx: Ctx):
    need(ctx.hadolint, "no hadolint (--hadolint)")
    df = ctx.deploy / "Dockerfile"
    r = subprocess.run(
        [ctx.hadolint, "--failure-threshold", "info", "--no-color", str(df)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    need(r.returncode == 0, f"hadolint found problems:\n{r.stdout}{r.stderr}")


def docker_structure(ctx: Ctx):
    df = ctx.deploy / "Dockerfile"
    ins = dockerfile_instructions(df)
    froms = [rest for w, rest in ins if w == "FROM"]
    need(len(froms) >= 2, f"{df}: not multi-stage ({len(froms)} FROM)")
    runtime = froms[-1]
    need(
        "distroless" in runtime or "slim" in runtime,
        f"{df}: the runtime stage ({runtime}) is not a small base (distroless or slim)",
    )
    runs = " ".join(rest for w, rest in ins if w == "RUN")
    need(
        re.search(r"cargo build[^&;]*--release", runs) and "--locked" in runs,
        f"{df}: no `cargo build --release --locked`",
    )
    # the dependency layer: manifests copied before the sources
    copies = [rest for w, rest in ins if w == "COPY"]
    first_src = next((i for i, c in enumerate(copies) if c.startswith("gateway/ ") or c.startswith("gateway/src")), None)
    first_lock = next((i for i, c in enumerate(copies) if "Cargo.lock" in c), None)
    need(
        first_lock is not None and first_src is not None and first_lock < first_src,
        f"{df}: Cargo.toml/Cargo.lock are not copied (and built) before the sources",
    )
    # the final stage's USER: numeric, not root
    last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    final = ins[last_from:]
    users = [rest for w, rest in final if w == "USER"]
    need(users, f"{df}: the runtime stage sets no USER (runs as root)")
    uid = users[-1].split(":")[0]
    need(uid.isdigit() and int(uid) != 0, f"{df}: USER {users[-1]} is not a numeric non-root uid (Kubernetes' runAsNonRoot needs a number)")
    expose = " ".join(rest for w, rest in final if w == "EXPOSE").split()
    need({"8080", "8001"} <= set(expose), f"{df}: EXPOSE {expose}, want 8080 and 8001")
    hc = [rest for w, rest in final if w == "HEALTHCHECK"]
    need(hc, f"{df}: no HEALTHCHECK")
    m = re.search(r"CMD\s+(\[.*\])", hc[-1])
    need(m, f"{df}: HEALTHCHECK is not exec form (the image has no shell): {hc[-1]}")
    import json

    argv = json.loads(m.group(1))
    need("--probe" in argv, f"{df}: HEALTHCHECK does not use `gateway --probe`: {argv}")
    url = argv[argv.index("--probe") + 1]
    need(url.endswith(":8001/readyz"), f"{df}: HEALTHCHECK probes {url}, want the admin port's /readyz")
    ep = [rest for w, rest in final if w == "ENTRYPOINT"]
    need(ep and ep[-1].startswith("["), f"{df}: ENTRYPOINT missing or not exec form")
    need(json.loads(ep[-1])[0] == argv[0], f"{df}: HEALTHCHECK runs {argv[0]}, ENTRYPOINT {ep[-1]}")
    # what it copies from the build context exists
    for w, rest in ins:
        if w != "COPY" or "--from=" in rest:
            continue
        parts = [p for p in rest.split() if not p.startswith("--")]
        for src in parts[:-1]:
            need((ctx.root / src).exists(), f"{df}: COPY {src}: no such file in the build context")
    di = ctx.root / ".dockerignore"
    need(di.exists(), "no .dockerignore at the build context's root")
    ignored = {l.strip().strip("/") for l in di.read_text().splitlines() if l.strip() and not l.startswith("#")}
    need({"target", ".git"} <= ignored, f".dockerignore does not exclude target and .git: {sorted(ignored)}")


def docker_probe_flag(ctx: Ctx):
    r = subprocess.run([ctx.gateway, "--help"], capture_output=True, text=True, timeout=30)
    need("--probe" in r.stdout, "`gateway --help` has no --probe: the image's HEALTHCHECK would fail")


def docker_default_config(ctx: Ctx):
    df = ctx.deploy / "Dockerfile"
    ins = dockerfile_instructions(df)
    cfg_copy = [rest.split() for w, rest in ins if w == "COPY" and rest.split()[-1].startswith("/etc/gateway/")]
    need(cfg_copy, f"{df}: no default config copied to /etc/gateway/")
    src, dst = cfg_copy[-1][-2], cfg_copy[-1][-1]
    cmd = [rest for w, rest in ins if w == "CMD"]
    need(cmd and dst in cmd[-1], f"{df}: CMD does not run the default config {dst}: {cmd}")
    text = (ctx.root / src).read_text()
    env = dummy_env(env_refs(text), {})
    cfg = check_config(ctx, text, {}, str(src))
    need(host_port(cfg["server"]["admin_listen"]) == 8001, f"{src}: admin_listen is not on 8001")
    need(str(cfg["server"]["admin_listen"]).startswith("0.0.0.0"), f"{src}: admin_listen must be 0.0.0.0 in a container")
    del env


# ---------------------------------------------------------------- compose


def compose_expand(value: str, env: dict[str, str]) -> str:
    """Compose's own interpolation from `env`: `$$` is a `$`; a required variable
    (`${V:?err}`) that `env` does not set fails, as `docker compose up` does."""

    def sub(m):
        name, op, arg = m.groups()
        v = env.get(name)
        if op in (":?", "?"):
            need(v is not None and (op == "?" or v != ""), f"compose refuses to start: {name} {arg}")
            return v
        if op == ":-":
            return v if v else arg
        if op == "-":
            return arg if v is None else v
        return v or ""

    return "$".join(COMPOSE_REF.sub(sub, part) for part in value.split("$$"))


def compose_required(doc) -> dict[str, str]:
    """Dummy values for the variables compose requires (`${V:?...}`) anywhere in `doc`."""
    if isinstance(doc, dict):
        doc = list(doc.values())
    if isinstance(doc, list):
        return {k: v for item in doc for k, v in compose_required(item).items()}
    refs = COMPOSE_REF.finditer(str(doc)) if isinstance(doc, str) else []
    return {m.group(1): f"ci-dummy-{m.group(1).lower()}-0123456789" for m in refs if m.group(2) in (":?", "?")}


def compose_load(ctx: Ctx) -> dict:
    path = ctx.deploy / "compose.yaml"
    with open(path) as f:
        return yaml.safe_load(f)


def compose_schema(ctx: Ctx):
    """The Compose Specification, as the compose_spec crate (PyPI: compose-spec) parses it:
    unknown keys, wrong types, bad durations, ports or depends_on conditions fail."""
    from compose_spec import PyCompose

    doc = compose_load(ctx)  # PyYAML resolves the `<<` merge keys compose_spec does not
    try:
        PyCompose.from_yaml(yaml.safe_dump(doc, sort_keys=False))
    except ValueError as e:
        raise Fail(f"deploy/compose.yaml does not follow the Compose Specification: {e}")


def compose_wiring(ctx: Ctx):
    doc = compose_load(ctx)
    svcs = doc.get("services", {})
    need(isinstance(svcs, dict) and svcs, "compose.yaml: no services")
    for s in ["redis", "lb", "otel-collector", "tempo", "loki", "prometheus", "grafana"]:
        need(s in svcs, f"compose.yaml: no service {s}")
    gws = compose_gateways(svcs)
    need(len(gws) == 3, f"compose.yaml: want 3 gateway replicas built from deploy/Dockerfile, found {gws}")
    # bind mounts exist
    for name, s in svcs.items():
        for vol in s.get("volumes", []) or []:
            src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if src.startswith(".") or src.startswith("/"):
                need((ctx.deploy / src).exists(), f"compose.yaml: service {name} mounts {src}, which does not exist")
        b = s.get("build")
        if b:
            ctxdir = (ctx.deploy / b.get("context", ".")).resolve()
            need((ctxdir / b.get("dockerfile", "Dockerfile")).exists(), f"compose.yaml: {name}: no {b}")
    for name, s in svcs.items():
        deps = s.get("depends_on") or []
        for dep in deps if isinstance(deps, list) else deps.keys():
            need(dep in svcs, f"compose.yaml: {name} depends on {dep}, no such service")
    # one config file for the three replicas: the file --config names, in a mounted directory
    mounts = set()
    for g in gws:
        cmd = svcs[g].get("command") or []
        need("--config" in cmd, f"compose.yaml: {g} does not pass --config: {cmd}")
        cfg_in = cmd[cmd.index("--config") + 1]
        m = [v.split(":") for v in svcs[g].get("volumes", []) if isinstance(v, str) and cfg_in.startswith(v.split(":")[1].rstrip("/") + "/")]
        need(len(m) == 1, f"compose.yaml: {g}: {cfg_in} is not in a mounted directory")
        src = (ctx.deploy / m[0][0] / cfg_in[len(m[0][1].rstrip("/")) + 1:]).resolve()
        need(src.is_file(), f"compose.yaml: {g}: {cfg_in} would be {src}, which does not exist")
        mounts.add(src)
        need(svcs[g].get("read_only") is True, f"compose.yaml: {g} has no read-only root fs")
        need(str(svcs[g].get("stop_grace_period", "")).rstrip("s").isdigit(), f"compose.yaml: {g}: no stop_grace_period in seconds")
    need(len(mounts) == 1, f"compose.yaml: the replicas mount different configs: {mounts}")
    cfg_path = mounts.pop()
    text = cfg_path.read_text()
    refs = env_refs(text)
    dummies = compose_required(doc)
    for g in gws:
        env = {k: compose_expand(str(v), dummies) for k, v in (svcs[g].get("environment") or {}).items()}
        # clap refuses --probe (the image's HEALTHCHECK) next to GATEWAY_CONFIG from the environment
        need("GATEWAY_CONFIG" not in env, f"compose.yaml: {g} sets GATEWAY_CONFIG: `gateway --probe` (HEALTHCHECK) then exits 2; pass --config")
        missing = [n for n, d in refs.items() if d is None and n not in env]
        need(not missing, f"compose.yaml: {g} does not set {missing}, which {cfg_path.name} needs")
        cfg = check_config(ctx, text, env, f"{cfg_path.relative_to(ctx.root)} (environment of {g})")
    srv = cfg["server"]
    admin = host_port(srv["admin_listen"])
    data = host_port(srv["listen"])
    need(str(srv["admin_listen"]).startswith("0.0.0.0"), f"{cfg_path.name}: admin_listen must be 0.0.0.0 (Prometheus, HAProxy checks)")
    grace = int(srv.get("shutdown_grace_s", 30))
    for g in gws:
        stop = int(str(svcs[g]["stop_grace_period"]).rstrip("s"))
        need(stop > grace + EXIT_FLUSH_S, f"compose.yaml: {g}: stop_grace_period {stop}s <= shutdown_grace_s {grace} + exit work {EXIT_FLUSH_S}")
    need(cfg["state"]["backend"] == "redis", f"{cfg_path.name}: the replicas must share state through Redis")
    need("redis:6379" in cfg["state"]["redis"]["url"], f"{cfg_path.name}: Redis is not the compose service redis")
    otlp = cfg["telemetry"]["otlp"]["endpoint"]
    need("otel-collector:" in otlp, f"{cfg_path.name}: OTLP goes to {otlp}, not the otel-collector service")
    # HAProxy: one server per replica on the data port, checked on the admin port's /readyz
    hap = (ctx.deploy / "compose/haproxy.cfg").read_text()
    servers = re.findall(r"^\s*server\s+\S+\s+([\w.-]+):(\d+)", hap, re.M)
    need(sorted(h for h, _ in servers) == gws, f"haproxy.cfg: servers {servers} are not the replicas {gws}")
    need(all(int(p) == data for _, p in servers), f"haproxy.cfg: servers not on the data port {data}")
    need(re.search(r"uri\s+/readyz", hap) and re.search(rf"check\s+port\s+{admin}\b", hap), f"haproxy.cfg: no /readyz check on the admin port {admin}")
    bind = re.search(r"frontend\s+gateway\s*\n\s*bind\s+:(\d+)", hap)
    need(bind, "haproxy.cfg: no `frontend gateway` binding a port")
    lb_ports = [str(p).split(":")[-1] for p in svcs["lb"].get("ports", [])]
    need(bind.group(1) in lb_ports, f"compose.yaml: lb does not publish haproxy's port {bind.group(1)}")
    # Prometheus scrapes every replica's admin port
    prom = yaml.safe_load((ctx.deploy / "compose/prometheus.yml").read_text())
    targets = [t for j in prom["scrape_configs"] for sc in j.get("static_configs", []) for t in sc["targets"]]
    for g in gws:
        need(f"{g}:{admin}" in targets, f"prometheus.yml: {g}:{admin} is not scraped (targets {targets})")
    # the collector sends to services that exist
    col = yaml.safe_load((ctx.deploy / "otel/collector.yaml").read_text())
    for name, exp in col["exporters"].items():
        ep = str(exp.get("endpoint", ""))
        host = re.sub(r"^\w+://", "", ep).split(":")[0].split("/")[0]
        if host not in ("0.0.0.0", ""):
            need(host in svcs, f"otel/collector.yaml: exporter {name} sends to {host}, no such compose service")
    # Grafana: datasources the dashboard needs, dashboard file provisioned
    ds = yaml.safe_load((ctx.deploy / "compose/grafana/provisioning/datasources/datasources.yaml").read_text())
    types = {d["type"]: d for d in ds["datasources"]}
    for t in ["prometheus", "tempo", "loki"]:
        need(t in types, f"grafana datasources: no {t}")
        host = re.sub(r"^\w+://", "", types[t]["url"]).split(":")[0]
        need(host in svcs, f"grafana datasource {t}: {host} is not a compose service")
    prov = yaml.safe_load((ctx.deploy / "compose/grafana/provisioning/dashboards/dashboards.yaml").read_text())
    path = prov["providers"][0]["options"]["path"]
    gm = [v for v in svcs["grafana"]["volumes"] if v.split(":")[1].startswith(path + "/")]
    need(gm and gm[0].split(":")[0].endswith("grafana/gateway-dashboard.json"), f"compose.yaml: grafana does not mount the dashboard under {path}")


def compose_gateways(svcs: dict) -> list[str]:
    """The gateway replicas: the services built from deploy/Dockerfile."""
    return sorted(n for n, s in svcs.items() if "Dockerfile" in str((s.get("build") or {}).get("dockerfile", "")))


def compose_config_text(ctx: Ctx, svc: dict) -> str:
    """The config file a replica's --config names, read from its mounted directory."""
    cmd = svc["command"]
    cfg_in = cmd[cmd.index("--config") + 1]
    for v in svc.get("volumes", []):
        src, dst = v.split(":")[:2]
        if cfg_in.startswith(dst.rstrip("/") + "/"):
            return (ctx.deploy / src / cfg_in[len(dst.rstrip("/")) + 1:]).read_text()
    raise Fail(f"compose.yaml: {cfg_in} is not in a mounted directory")


def compose_secrets(ctx: Ctx):
    """No credential of the gateway has a default: `docker compose up` refuses to
    start without each; Redis requires the password the replicas connect with."""
    doc = compose_load(ctx)
    svcs = doc["services"]
    dummies = compose_required(doc)
    problems: list[str] = []
    redis_pw = set()
    for g in compose_gateways(svcs):
        env = svcs[g].get("environment") or {}
        need(isinstance(env, dict), f"compose.yaml: {g}: environment is not a mapping")
        cfg = yaml.safe_load(compose_config_text(ctx, svcs[g]))
        for name, (where, default) in credential_refs(cfg).items():
            if default is not None:
                problems.append(f"compose gateway config: {where} has a default for ${{{name}}}: a value anyone can read here")
            v = str(env.get(name, ""))
            m = COMPOSE_REF.fullmatch(v)
            if not (m and m.group(2) == ":?"):
                problems.append(f"compose.yaml: the replicas' {name} ({where}) is {v!r}: a credential of the gateway must be required "
                                f"(${{{name}:?...}}), never defaulted or written out: `docker compose up` would run with a value anyone can read here")
        url = str(((cfg.get("state") or {}).get("redis") or {}).get("url", ""))
        pw = re.match(r"^rediss?://:\$\{(\w+)\}@", url)
        if pw:
            redis_pw.add(str(env.get(pw.group(1))))
        else:
            problems.append(f"compose gateway config: state.redis.url {url} carries no password from the environment (redis://:${{REDIS_PASSWORD}}@redis:6379/0)")
    if len(redis_pw) > 1:
        problems.append(f"compose.yaml: the replicas connect to Redis with different passwords: {redis_pw}")
    r = svcs["redis"]
    renv = r.get("environment") or {}
    for n in ["REDIS_PASSWORD", "REDISCLI_AUTH"]:
        if not isinstance(renv, dict) or str(renv.get(n)) not in redis_pw:
            problems.append(f"compose.yaml: redis: {n} is not the replicas' Redis password {sorted(redis_pw)}")
    argv = [compose_expand(str(a), dummies) for a in r.get("entrypoint") or []]
    problems += collect(check_redis_start, ctx, argv, [str(a) for a in r.get("command") or []], "compose.yaml: redis")
    need(not problems, "\n".join(dict.fromkeys(problems)))


def collect(fn, *a) -> list[str]:
    """A check's failure as a list of problems (empty when it passed)."""
    try:
        fn(*a)
        return []
    except Fail as e:
        return [str(e)]


def credential_refs(cfg: dict) -> dict[str, tuple[str, str | None]]:
    """The environment variables the gateway's credentials come from (admin
    token, Redis URLs, consumer keys, and the key pepper): name -> (where, default)."""
    out: dict[str, tuple[str, str | None]] = {"GATEWAY_KEY_PEPPER": ("the key pepper", None)}

    def add(value, where):
        for m in ENV_REF.finditer(str(value)):
            out.setdefault(m.group(1), (where, m.group(2)[2:] if m.group(2) else None))

    add((cfg.get("server") or {}).get("admin_token", ""), "server.admin_token")
    r = (cfg.get("state") or {}).get("redis") or {}
    add(r.get("url", ""), "state.redis.url")
    for u in r.get("cluster_nodes") or []:
        add(u, "state.redis.cluster_nodes")
    for t in cfg.get("tenants") or []:
        for c in t.get("consumers") or []:
            for k in c.get("keys") or []:
                add(k, f"tenants[{t.get('id')}].consumers[{c.get('name')}].keys")
    return out


def redis_start_reference(ctx: Ctx) -> list[str]:
    docs = load_docs(ctx.root / REDIS_START_FILE)
    sts = by_kind(docs, "StatefulSet")
    need(sts, f"{REDIS_START_FILE}: no StatefulSet")
    c = sts[0]["spec"]["template"]["spec"]["containers"][0]
    return [str(a) for a in c.get("command") or []]


def check_redis_start(ctx: Ctx, argv: list[str], args: list[str], label: str):
    """The bundled Redis starts through the password script: requirepass from
    $REDIS_PASSWORD on stdin (never in argv, never in a ConfigMap), refused empty."""
    need(argv[:2] == ["sh", "-c"] and len(argv) >= 3, f"{label}: Redis does not start through the password script (sh -c ...): {argv}")
    script = argv[2]
    need('test -n "$REDIS_PASSWORD" ||' in script, f"{label}: the start script does not refuse an empty REDIS_PASSWORD")
    need(re.search(r'exec redis-server - "\$@" <<EOF\nrequirepass \$REDIS_PASSWORD\nEOF', script),
         f"{label}: Redis does not read `requirepass $REDIS_PASSWORD` from stdin (`redis-server -`): no password")
    need(not any("requirepass" in a or "masterauth" in a for a in args), f"{label}: a password option in Redis's arguments: {args}")
    ref = redis_start_reference(ctx)
    need(argv == ref, f"{label}: the Redis start script differs from {REDIS_START_FILE}'s (the one tests/tests/deploy_redis.rs runs):\n{argv}\n{ref}")


# ---------------------------------------------------------------- kubernetes objects

CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PodMonitor")}


def validate_schemas(ctx: Ctx, docs: list[dict], label: str):
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

    problems = []
    for d in docs:
        kind = f"{d.get('apiVersion')}/{d.get('kind')} {d.get('metadata', {}).get('name')}"
        if (d.get("apiVersion"), d.get("kind")) in CRD_KINDS:
            problems += validate_monitor(ctx, d, kind)
            continue
        for ver in ctx.k8s_versions:
            try:
                kubernetes_validate.validate(d, ver, strict=True)
            except ValidationError as e:
                problems.append(f"{kind} (Kubernetes {ver}): {'.'.join(map(str, e.path))}: {e.message}")
            except SchemaNotFoundError as e:
                problems.append(f"{kind} (Kubernetes {ver}): no schema: {e}")
    need(not problems, f"{label}: schema errors:\n" + "\n".join(problems))


_MONITOR_SCHEMAS: dict = {}


def strict_schema(node):
    """additionalProperties: false wherever properties are listed and nothing else is
    allowed: the API server would drop an unknown field silently (a typo'd interval)."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node and "patternProperties" not in node:
            node["additionalProperties"] = False
        for v in node.values():
            strict_schema(v)
    elif isinstance(node, list):
        for v in node:
            strict_schema(v)
    return node


def monitor_schema(kind: str) -> dict:
    """JSON schema of a Prometheus Operator kind, from the models generated from its
    CRDs (PyPI: cloudcoil-models-prometheus-operator), made strict."""
    if kind not in _MONITOR_SCHEMAS:
        from cloudcoil.models.prometheus_operator import v1

        schema = getattr(v1, kind).model_json_schema(by_alias=True, mode="validation")
        _MONITOR_SCHEMAS[kind] = strict_schema(schema)
    return _MONITOR_SCHEMAS[kind]


def validate_monitor(ctx: Ctx, d: dict, kind: str) -> list[str]:
    import jsonschema

    schema = monitor_schema(d["kind"])
    errs = sorted(jsonschema.Draft202012Validator(schema).iter_errors(d), key=lambda e: list(e.path))
    return [f"{kind}: {'.'.join(map(str, e.path))}: {e.message}" for e in errs[:10]]


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def check_objects(ctx: Ctx, docs: list[dict], label: str, secret_known: bool = True, pepper: bool = True):
    """The wiring of one set of objects (plain manifests or a chart rendering)."""
    deps = by_kind(docs, "Deployment")
    need(len(deps) == 1, f"{label}: want one Deployment, found {len(deps)}")
    dep = deps[0]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    plabels = spec["template"]["metadata"]["labels"]
    need(matches(spec["selector"]["matchLabels"], plabels), f"{label}: Deployment selector does not match its pod labels")
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    if "replicas" in spec:
        need(spec["replicas"] >= 2, f"{label}: {spec['replicas']} replica(s): the gateway runs several")
    else:
        need(hpas, f"{label}: Deployment without replicas and without an HPA")
    c = next((c for c in pod["containers"] if c["name"] == "gateway"), None)
    need(c is not None, f"{label}: no container named gateway")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    need({"http", "admin"} <= set(ports), f"{label}: container ports {ports}, want http and admin")
    # probes on the admin port
    rp, lp = c.get("readinessProbe", {}), c.get("livenessProbe", {})
    need(rp.get("httpGet", {}).get("path") == "/readyz" and rp["httpGet"].get("port") in ("admin", ports["admin"]),
         f"{label}: readinessProbe is not GET /readyz on the admin port: {rp}")
    need(lp.get("httpGet", {}).get("path") == "/healthz" and lp["httpGet"].get("port") in ("admin", ports["admin"]),
         f"{label}: livenessProbe is not GET /healthz on the admin port: {lp}")
    # security
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    need(psc.get("runAsNonRoot") or csc.get("runAsNonRoot"), f"{label}: runAsNonRoot is not set")
    need(csc.get("readOnlyRootFilesystem") is True, f"{label}: readOnlyRootFilesystem is not true")
    need(csc.get("allowPrivilegeEscalation") is False, f"{label}: allowPrivilegeEscalation is not false")
    need("ALL" in (csc.get("capabilities", {}).get("drop") or []), f"{label}: capabilities are not dropped")
    res = c.get("resources", {})
    need(res.get("requests", {}).get("cpu") and res.get("requests", {}).get("memory") and res.get("limits", {}).get("memory"),
         f"{label}: resources need cpu/memory requests and a memory limit: {res}")
    # the config: mounted from a ConfigMap of this set
    args = c.get("args", [])
    need("--config" in args, f"{label}: the container does not pass --config: {args}")
    cfg_file = args[args.index("--config") + 1]
    mount = next((m for m in c.get("volumeMounts", []) if cfg_file.startswith(m["mountPath"].rstrip("/") + "/")), None)
    need(mount, f"{label}: {cfg_file} is not on a volume mount")
    vol = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    need("configMap" in vol, f"{label}: the config volume is not a ConfigMap")
    cms = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    cm = cms.get(vol["configMap"]["name"])
    need(cm is not None, f"{label}: ConfigMap {vol['configMap']['name']} is not among the objects")
    key = cfg_file[len(mount["mountPath"].rstrip("/")) + 1:]
    need(key in cm["data"], f"{label}: ConfigMap {cm['metadata']['name']} has no key {key}")
    text = cm["data"][key]
    # the environment the pod gets: env values, Secret keys (envFrom)
    env_known: dict[str, str] = {}
    env_names: set[str] = set()
    for e in c.get("env", []):
        env_names.add(e["name"])
        if "value" in e:
            env_known[e["name"]] = str(e["value"])
    secrets = {d["metadata"]["name"]: d for d in by_kind(docs, "Secret")}
    unknown_secret = []
    for ef in c.get("envFrom", []):
        ref = ef.get("secretRef", {}).get("name")
        if ref is None:
            continue
        if ref in secrets:
            s = secrets[ref]
            import base64

            for k, v in (s.get("stringData") or {}).items():
                env_names.add(k)
                env_known[k] = str(v)
            for k, v in (s.get("data") or {}).items():
                env_names.add(k)
                env_known[k] = base64.b64decode(v).decode()
        else:
            need(not secret_known, f"{label}: envFrom Secret {ref} is not among the objects")
            unknown_secret.append(ref)
    need("GATEWAY_CONFIG" not in env_names, f"{label}: GATEWAY_CONFIG in the environment makes `gateway --probe`/--check-config exit 2; pass --config")
    refs = env_refs(text)
    missing = [n for n, d in refs.items() if d is None and n not in env_names]
    if unknown_secret:
        ctx.note(f"{label}: {missing} assumed to be in the existing Secret {unknown_secret}")
    else:
        need(not missing, f"{label}: the config needs {missing}, which the pod's environment does not set")
    env = dummy_env([n for n in refs if n in env_names or refs[n] is None], env_known)
    cfg = check_config(ctx, text, env, f"{label}: ConfigMap {cm['metadata']['name']}/{key}")
    srv = cfg.get("server", {})
    need(host_port(srv.get("admin_listen", "127.0.0.1:8001")) == ports["admin"] and str(srv.get("admin_listen")).startswith("0.0.0.0"),
         f"{label}: config admin_listen {srv.get('admin_listen')} is not 0.0.0.0:{ports['admin']} (probes would fail)")
    need(host_port(srv.get("listen", "0.0.0.0:8080")) == ports["http"], f"{label}: config listen is not the http port {ports['http']}")
    st = cfg.get("state", {})
    need(st.get("backend") == "redis", f"{label}: several replicas need state.backend redis")
    # shutdown budget
    grace = int(srv.get("shutdown_grace_s", 30))
    pre = c.get("lifecycle", {}).get("preStop", {})
    need(not pre or "sleep" in pre or "httpGet" in pre, f"{label}: preStop uses exec, but the image has no shell")
    pre_s = int(pre.get("sleep", {}).get("seconds", 0))
    tgp = int(pod.get("terminationGracePeriodSeconds", 30))
    need(tgp > pre_s + grace + EXIT_FLUSH_S,
         f"{label}: terminationGracePeriodSeconds {tgp} <= preStop {pre_s} + shutdown_grace_s {grace} + exit work {EXIT_FLUSH_S}")
    if "otlp" in cfg.get("telemetry", {}):
        ep = cfg["telemetry"]["otlp"]["endpoint"]
        m = ENV_REF.fullmatch(ep)
        if m:
            need(m.group(1) in env_names, f"{label}: OTLP endpoint {ep} is not set in the environment")
    # Services select the pods; the admin Service exposes the admin port
    svcs = [s for s in by_kind(docs, "Service") if matches(s["spec"].get("selector"), plabels)]
    need(svcs, f"{label}: no Service selects the gateway pods")
    tports = {p.get("targetPort") for s in svcs for p in s["spec"]["ports"]}
    need({"http", "admin"} <= tports or {"http", "admin"} <= {ports.get(t, t) for t in tports} | tports,
         f"{label}: Services target ports {tports}, want http and admin")
    # PDB, HPA
    pdbs = by_kind(docs, "PodDisruptionBudget")
    need(pdbs and all(matches(p["spec"]["selector"]["matchLabels"], plabels) for p in pdbs), f"{label}: no PodDisruptionBudget for the gateway pods")
    for h in hpas:
        ref = h["spec"]["scaleTargetRef"]
        need(ref["kind"] == "Deployment" and ref["name"] == dep["metadata"]["name"], f"{label}: HPA targets {ref}")
        need(h["spec"]["minReplicas"] >= 2, f"{label}: HPA minReplicas < 2")
    # Redis: the bundled one is what the config points at
    redis_url = (st.get("redis") or {}).get("url")
    for ss in by_kind(docs, "StatefulSet"):
        rs = [s for s in by_kind(docs, "Service") if matches(s["spec"].get("selector"), ss["spec"]["template"]["metadata"]["labels"])]
        names = {s["metadata"]["name"] for s in rs}
        need(ss["spec"]["serviceName"] in names, f"{label}: StatefulSet {ss['metadata']['name']}: serviceName is no Service of its pods")
        if redis_url:
            host = re.sub(r"^\w+://", "", redis_url).split("@")[-1].split(":")[0]
            need(host in names, f"{label}: state.redis.url {redis_url} is not the bundled Redis Service ({sorted(names)})")
    # monitors
    for sm in by_kind(docs, "ServiceMonitor"):
        sel = sm["spec"]["selector"]["matchLabels"]
        target = [s for s in by_kind(docs, "Service") if matches(sel, s["metadata"].get("labels", {}))]
        need(target, f"{label}: ServiceMonitor selects no Service")
        for ep in sm["spec"]["endpoints"]:
            need(any(p.get("name") == ep["port"] for s in target for p in s["spec"]["ports"]), f"{label}: ServiceMonitor port {ep['port']} is no port of {[s['metadata']['name'] for s in target]}")
            for s in target:
                for p in s["spec"]["ports"]:
                    if p.get("name") == ep["port"]:
                        need(p["targetPort"] in ("admin", ports["admin"]), f"{label}: ServiceMonitor scrapes {p}, not the admin port")
    for pm in by_kind(docs, "PodMonitor"):
        need(matches(pm["spec"]["selector"]["matchLabels"], plabels), f"{label}: PodMonitor does not select the gateway pods")
        for ep in pm["spec"]["podMetricsEndpoints"]:
            need(ep["port"] == "admin", f"{label}: PodMonitor scrapes port {ep['port']}, not admin")
    # namespaces: one for all namespaced objects
    nss = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    need(len(nss) == 1, f"{label}: objects in several namespaces: {nss}")
    check_hardening(ctx, docs, label, c, cfg, env_known, pepper)


def secret_key_ref(container: dict, name: str) -> tuple[str, str] | None:
    """(Secret, key) of an env variable taken from a Secret key the pod requires."""
    e = next((e for e in container.get("env", []) if e["name"] == name), None)
    ref = ((e or {}).get("valueFrom") or {}).get("secretKeyRef")
    if not ref or ref.get("optional"):
        return None
    return ref["name"], ref["key"]


def secret_values(docs: list[dict]) -> list[str]:
    import base64

    out = []
    for s in by_kind(docs, "Secret"):
        out += [str(v) for v in (s.get("stringData") or {}).values()]
        out += [base64.b64decode(v).decode() for v in (s.get("data") or {}).values()]
    return [v for v in out if len(v) >= 8]


def check_hardening(ctx: Ctx, docs: list[dict], label: str, c: dict, cfg: dict, env_known: dict[str, str], pepper: bool):
    """Key pepper, Redis password and NetworkPolicies of one set of objects; every problem at once."""
    from deploy_netpol import check_network

    problems: list[str] = []
    dep = by_kind(docs, "Deployment")[0]
    ns, plabels = dep["metadata"]["namespace"], dep["spec"]["template"]["metadata"]["labels"]
    if pepper and not secret_key_ref(c, "GATEWAY_KEY_PEPPER"):
        problems.append(f"{label}: the gateway does not take GATEWAY_KEY_PEPPER from a Secret key the pod requires "
                        "(env valueFrom.secretKeyRef): key digests would be plain SHA-256, checkable offline against a copy of Redis")
    redis = (cfg.get("state") or {}).get("redis") or {}
    urls = [str(u) for u in ([redis["url"]] if redis.get("url") else []) + list(redis.get("cluster_nodes") or [])]
    stss = by_kind(docs, "StatefulSet")
    redis_labels = None
    if stss:  # the bundled Redis
        tpl = stss[0]["spec"]["template"]
        redis_labels = tpl["metadata"]["labels"]
        rc = tpl["spec"]["containers"][0]
        ref = secret_key_ref(rc, "REDIS_PASSWORD")
        if not ref:
            problems.append(f"{label}: the bundled Redis takes no REDIS_PASSWORD from a Secret: it has no password, and any pod that reaches it can write a key record")
        elif secret_key_ref(rc, "REDISCLI_AUTH") != ref:
            problems.append(f"{label}: the bundled Redis's REDISCLI_AUTH (readiness probe) is not its password {ref}")
        problems += collect(check_redis_start, ctx, [str(a) for a in rc.get("command") or []], [str(a) for a in rc.get("args") or []], f"{label}: bundled Redis")
        if ref and secret_key_ref(c, "REDIS_PASSWORD") != ref:
            problems.append(f"{label}: the gateway's REDIS_PASSWORD is not the Secret key {ref} the bundled Redis requires")
        if not (urls and all(re.match(r"^rediss?://:\$\{REDIS_PASSWORD\}@", u) for u in urls)):
            problems.append(f"{label}: state.redis {urls} does not authenticate with ${{REDIS_PASSWORD}} (redis://:${{REDIS_PASSWORD}}@host:6379/0)")
    # no secret value in a ConfigMap or on a command line
    values = secret_values(docs)
    for cm in by_kind(docs, "ConfigMap"):
        for k, v in (cm.get("data") or {}).items():
            if any(s in v for s in values):
                problems.append(f"{label}: ConfigMap {cm['metadata']['name']}/{k} holds a value of a Secret")
    for w in by_kind(docs, "Deployment") + stss:
        for wc in w["spec"]["template"]["spec"]["containers"]:
            line = " ".join(str(a) for a in (wc.get("command") or []) + (wc.get("args") or []))
            if any(s in line for s in values):
                problems.append(f"{label}: {w['metadata']['name']}/{wc['name']}: a Secret's value on the command line")
    otlp = str(((cfg.get("telemetry") or {}).get("otlp") or {}).get("endpoint", "")) or None
    if otlp:
        m = ENV_REF.fullmatch(otlp)
        otlp = env_known.get(m.group(1)) if m else otlp
    problems += check_network(docs, label, plabels, ns, redis_labels, [] if stss else urls, otlp)
    need(not problems, "\n".join(problems))


def k8s_files(ctx: Ctx) -> list[Path]:
    return sorted((ctx.deploy / "k8s").rglob("*.yaml"))


def k8s_schemas(ctx: Ctx):
    docs = [d for p in k8s_files(ctx) for d in load_docs(p)]
    need(docs, "deploy/k8s: no objects")
    validate_schemas(ctx, docs, "deploy/k8s")


def k8s_wiring(ctx: Ctx):
    files = k8s_files(ctx)
    docs = [d for p in files for d in load_docs(p)]
    kinds = {d["kind"] for d in docs}
    want = {"Namespace", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget",
            "HorizontalPodAutoscaler", "StatefulSet", "ServiceMonitor", "PodMonitor"}
    need(want <= kinds, f"deploy/k8s: missing kinds {sorted(want - kinds)}")
    problems = []
    shipped = [f"{d['metadata']['name']} ({sorted({**(d.get('data') or {}), **(d.get('stringData') or {})})})" for d in by_kind(docs, "Secret")]
    if shipped:
        problems.append(f"deploy/k8s: ships Secret {shipped}: its values are known to everyone who reads this repository, "
                        "and applying the directory again would overwrite the real ones; the README's command creates it")
    # the namespace file sorts first (kubectl apply -f deploy/k8s/ applies in name order)
    top = sorted(p for p in files if p.parent == ctx.deploy / "k8s")
    need(load_docs(top[0])[0]["kind"] == "Namespace", f"deploy/k8s: {top[0].name} sorts first, not the Namespace")
    ns = [d for d in docs if d["kind"] == "Namespace"][0]["metadata"]["name"]
    for d in docs:
        if d["kind"] != "Namespace":
            need(d["metadata"].get("namespace") == ns, f"deploy/k8s: {d['kind']} {d['metadata']['name']} is not in namespace {ns}")
    # core objects (without the monitors, which are either/or) and each monitor
    core = [d for d in docs if d["kind"] not in ("ServiceMonitor", "PodMonitor", "Namespace")]
    try:
        core.append(k8s_readme_secret(ctx, ns))
    except Fail as e:
        problems.append(str(e))
    problems += collect(check_objects, ctx, core + by_kind(docs, "ServiceMonitor") + by_kind(docs, "PodMonitor"), "deploy/k8s")
    need(not problems, "\n".join(problems))


def k8s_readme_secret(ctx: Ctx, ns: str) -> dict:
    """The Secret the README's `kubectl create secret generic` command makes, with
    dummy values; each of GENERATED_SECRETS must come from `openssl rand`."""
    readme = (ctx.root / "README.md").read_text()
    m = re.search(r'kubectl -n (\S+) create secret generic (\S+)((?:\s*\\\n\s*--from-literal=\w+=(?:"[^"\n]*"|\S+))+)', readme)
    need(m, "README.md: no `kubectl -n <ns> create secret generic <name> --from-literal=...` command for deploy/k8s")
    need(m.group(1) == ns, f"README.md: the secret command's namespace {m.group(1)} is not {ns}")
    lits = dict(re.findall(r'--from-literal=(\w+)=("[^"\n]*"|\S+)', m.group(3)))
    for n in GENERATED_SECRETS:
        need(n in lits, f"README.md: the secret command does not make {n}")
        r = re.fullmatch(r'"\$\(openssl rand -(?:hex|base64) (\d+)\)"', lits[n])
        need(r and int(r.group(1)) >= 16, f"README.md: the secret command sets {n}={lits[n]}, not a random value (\"$(openssl rand -hex 32)\")")
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": m.group(2), "namespace": ns},
            "stringData": {n: f"ci-dummy-{n.lower()}-0123456789" for n in lits}}


# ---------------------------------------------------------------- helm


def chart_dir(ctx: Ctx) -> Path:
    return ctx.deploy / "helm" / "ai-gateway"


def helm_value_files(ctx: Ctx) -> list[Path | None]:
    return [None] + sorted((chart_dir(ctx) / "ci").glob("*-values.yaml"))


def helm_cmd(ctx: Ctx, *args, values: Path | None = None, sets=()):
    need(ctx.helm, "no helm (--helm)")
    cmd = [ctx.helm, *args]
    if values:
        cmd += ["-f", str(values)]
    for s in sets:
        cmd += ["--set", s]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def helm_lint(ctx: Ctx, values: Path | None):
    r = helm_cmd(ctx, "lint", "--strict", str(chart_dir(ctx)), values=values)
    need(r.returncode == 0, f"helm lint --strict failed:\n{r.stdout}{r.stderr}")


def helm_render(ctx: Ctx, values: Path | None, sets=()) -> list[dict]:
    r = helm_cmd(ctx, "template", "gw", str(chart_dir(ctx)), "--namespace", "ai", "--kube-version", ctx.k8s_versions[0],
                 values=values, sets=sets)
    need(r.returncode == 0, f"helm template failed:\n{r.stderr}")
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def helm_rendering(ctx: Ctx, values: Path | None):
    label = f"chart ({values.name if values else 'default values'})"
    docs = helm_render(ctx, values)
    validate_schemas(ctx, docs, label)
    vals = yaml.safe_load(values.read_text()) if values else {}
    existing = bool((vals.get("secrets") or {}).get("existingSecret"))
    pepper = (vals.get("secrets") or {}).get("keyPepper", True) is not False
    check_objects(ctx, docs, label, secret_known=not existing, pepper=pepper)
    dep = by_kind(docs, "Deployment")[0]
    if values is None:
        need(len(by_kind(docs, "StatefulSet")) == 1, f"{label}: the bundled Redis is not rendered")
        need(not by_kind(docs, "ServiceMonitor") and not by_kind(docs, "PodMonitor"), f"{label}: monitors are on by default")
    del dep


def helm_refusals(ctx: Ctx):
    """Values the chart must refuse to render."""
    bad = {
        "grace too short": ["shutdown.terminationGracePeriodSeconds=52"],
        "both monitors": ["serviceMonitor.enabled=true", "podMonitor.enabled=true"],
        "no Redis": ["redis.bundled=false"],
        "url and cluster": ["redis.bundled=false", "redis.url=redis://r:6379", "redis.clusterNodes={redis://a:6379}"],
    }
    for what, sets in bad.items():
        r = helm_cmd(ctx, "template", "gw", str(chart_dir(ctx)), sets=sets)
        need(r.returncode != 0, f"helm template with {what} ({sets}) rendered; it must fail")


def helm_secret_env(docs: list[dict], name: str) -> dict[str, str]:
    import base64

    s = next((d for d in by_kind(docs, "Secret") if d["metadata"]["name"] == name), None)
    need(s, f"chart: no Secret {name}: {[d['metadata']['name'] for d in by_kind(docs, 'Secret')]}")
    return {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}


def helm_generated_secrets(ctx: Ctx):
    """Admin token, key pepper and the bundled Redis's password are generated:
    long, random (two renderings differ), never a value of the chart's."""
    a, b = helm_render(ctx, None), helm_render(ctx, None)
    for secret, key, length in [("gw-ai-gateway-secrets", "GATEWAY_ADMIN_TOKEN", 32), ("gw-ai-gateway-secrets", "GATEWAY_KEY_PEPPER", 32),
                                ("gw-ai-gateway-redis-auth", "password", 32)]:
        va, vb = helm_secret_env(a, secret).get(key, ""), helm_secret_env(b, secret).get(key, "")
        need(len(va) >= length and va.isalnum(), f"chart: {secret}/{key} is not {length}+ random letters and digits: {len(va)} characters")
        need(va != vb, f"chart: {secret}/{key} is the same in two renderings: not generated, a value anyone can read in the chart")


def helm_secret_values(ctx: Ctx):
    """The values about secrets and NetworkPolicies do what the chart's README says."""

    def gateway(docs):
        return by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]

    def redis(docs):
        return by_kind(docs, "StatefulSet")[0]["spec"]["template"]["spec"]["containers"][0]

    docs = helm_render(ctx, None, sets=["redis.passwordSecret.name=my-redis", "redis.passwordSecret.key=pw"])
    need(not [d for d in by_kind(docs, "Secret") if "redis" in d["metadata"]["name"]], "chart: redis.passwordSecret given, yet a Redis password Secret is generated")
    for who, c in [("the bundled Redis", redis(docs)), ("the gateway", gateway(docs))]:
        need(secret_key_ref(c, "REDIS_PASSWORD") == ("my-redis", "pw"), f"chart: with redis.passwordSecret my-redis/pw, {who} reads REDIS_PASSWORD from {secret_key_ref(c, 'REDIS_PASSWORD')}")
    docs = helm_render(ctx, None, sets=["secrets.existingSecret=mine"])
    need(secret_key_ref(gateway(docs), "GATEWAY_KEY_PEPPER") == ("mine", "GATEWAY_KEY_PEPPER"), "chart: with secrets.existingSecret, the pods do not require its GATEWAY_KEY_PEPPER")
    need(not [d for d in by_kind(docs, "Secret") if d["metadata"]["name"].endswith("-secrets")], "chart: secrets.existingSecret given, yet the chart makes a Secret for the gateway")
    docs = helm_render(ctx, None, sets=["secrets.keyPepper=false"])
    need(secret_key_ref(gateway(docs), "GATEWAY_KEY_PEPPER") is None and "GATEWAY_KEY_PEPPER" not in helm_secret_env(docs, "gw-ai-gateway-secrets"),
         "chart: secrets.keyPepper=false still sets GATEWAY_KEY_PEPPER")
    docs = helm_render(ctx, None, sets=["networkPolicy.enabled=false"])
    need(not by_kind(docs, "NetworkPolicy"), "chart: networkPolicy.enabled=false still renders NetworkPolicies")


def helm_values_documented(ctx: Ctx):
    """Every top-level value appears in the chart README."""
    vals = yaml.safe_load((chart_dir(ctx) / "values.yaml").read_text())
    readme = (chart_dir(ctx) / "README.md").read_text()
    missing = [k for k in vals if f"`{k}" not in readme]
    need(not missing, f"deploy/helm/ai-gateway/README.md does not document {missing}")


# ---------------------------------------------------------------- self-test


def mutate(root: Path, rel: str, old: str, new: str):
    p = root / rel
    text = p.read_text()
    if old not in text:
        raise Fail(f"self-test: {rel} has no {old!r} to break")
    p.write_text(text.replace(old, new, 1))


SELFTESTS = [
    # (group, description, file, old, new)
    ("docker", "Dockerfile runs as root", "deploy/Dockerfile", "USER 65532:65532", "USER root"),
    ("docker", "HEALTHCHECK probes the data port", "deploy/Dockerfile", "8001/readyz", "8080/readyz"),
    ("docker", "hadolint: apt-get without pinning", "deploy/Dockerfile", "WORKDIR /src\n", "WORKDIR /src\nRUN apt-get update && apt-get install -y curl\n"),
    ("compose", "a replica missing from HAProxy", "deploy/compose/haproxy.cfg", "    server gateway-3 gateway-3:8080\n", ""),
    ("compose", "invalid gateway config", "deploy/compose/gateway/gateway.yaml", "  expected_replicas: 3", "  expected_replica: 3"),
    ("compose", "not the Compose Specification", "deploy/compose.yaml", "    restart: unless-stopped\n", "    restart: unless-stopped\n    restarts: 3\n"),
    ("compose", "a known default admin token", "deploy/compose.yaml", "GATEWAY_ADMIN_TOKEN: ${GATEWAY_ADMIN_TOKEN:?is not set (deploy/.env; see the README's Deploy section)}", "GATEWAY_ADMIN_TOKEN: ${GATEWAY_ADMIN_TOKEN:-dev-admin-token}"),
    ("compose", "Redis without a password", "deploy/compose.yaml", "        requirepass $$REDIS_PASSWORD\n", ""),
    ("compose", "the replicas connect to Redis without a password", "deploy/compose/gateway/gateway.yaml", "redis://:${REDIS_PASSWORD}@redis", "redis://redis"),
    ("compose", "Prometheus misses a replica", "deploy/compose/prometheus.yml", '"gateway-2:8001", ', ""),
    ("k8s", "unknown field in the Deployment", "deploy/k8s/30-deployment.yaml", "      terminationGracePeriodSeconds: 60", "      terminationGracePeriodSeconds: 60\n      terminationGraceSeconds: 60"),
    ("k8s", "wrong type in the HPA", "deploy/k8s/40-hpa.yaml", "minReplicas: 3", "minReplicas: three"),
    ("k8s", "grace shorter than preStop + drain", "deploy/k8s/30-deployment.yaml", "terminationGracePeriodSeconds: 60", "terminationGracePeriodSeconds: 50"),
    ("k8s", "readiness on the data port", "deploy/k8s/30-deployment.yaml", "path: /readyz\n              port: admin", "path: /readyz\n              port: http"),
    ("k8s", "invalid gateway config in the ConfigMap", "deploy/k8s/10-configmap.yaml", "shutdown_grace_s: 30", "shutdown_grace: 30"),
    ("k8s", "config needs a variable the pod lacks", "README.md", ' \\\n  --from-literal=OPENAI_API_KEY="$OPENAI_API_KEY"', ""),
    ("k8s", "a known pepper in the README's secret command", "README.md", 'GATEWAY_KEY_PEPPER="$(openssl rand -hex 32)"', "GATEWAY_KEY_PEPPER=pepper"),
    ("k8s", "a Secret with values ships", "deploy/k8s/40-pdb.yaml", "apiVersion: policy/v1", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: ai-gateway\nstringData:\n  GATEWAY_ADMIN_TOKEN: dev\n---\napiVersion: policy/v1"),
    ("k8s", "the gateway does not require the pepper", "deploy/k8s/30-deployment.yaml", "                  key: GATEWAY_KEY_PEPPER", "                  key: GATEWAY_KEY_PEPPER\n                  optional: true"),
    ("k8s", "Redis without a password", "deploy/k8s/20-redis.yaml", "              requirepass $REDIS_PASSWORD\n", ""),
    ("k8s", "any pod of the namespace reaches Redis", "deploy/k8s/25-networkpolicy.yaml", "    - from:\n        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: ai-gateway\n              app.kubernetes.io/component: gateway\n", "    - from:\n        - podSelector: {}\n"),
    ("k8s", "the gateway reaches HTTPS inside the cluster", "deploy/k8s/25-networkpolicy.yaml", "            except: [10.0.0.0/8, ", "            except: ["),
    ("k8s", "Redis may connect out", "deploy/k8s/25-networkpolicy.yaml", "  policyTypes: [Ingress, Egress]", "  policyTypes: [Ingress]"),
    ("k8s", "unknown field in the ServiceMonitor", "deploy/k8s/monitoring/servicemonitor.yaml", "      interval: 15s", "      intervall: 15s"),
    ("helm", "chart template emits an unknown field", "deploy/helm/ai-gateway/templates/deployment.yaml", "      automountServiceAccountToken: false", "      automountServiceAccountTokens: false"),
    ("helm", "generated secrets not random", "deploy/helm/ai-gateway/templates/_helpers.tpl", "{{- randAlphaNum (int .length) -}}", "{{- repeat (int .length) \"x\" -}}"),
    ("helm", "the gateway without the Redis password", "deploy/helm/ai-gateway/templates/_helpers.tpl", 'printf "redis://:${REDIS_PASSWORD}@%s:6379/0"', 'printf "redis://%s:6379/0"'),
    ("helm", "Redis reachable from any pod", "deploy/helm/ai-gateway/templates/networkpolicy.yaml", '  ingress:\n    - from:\n        - podSelector:\n            matchLabels:\n              {{- include "ai-gateway.selectorLabels" . | nindent 14 }}\n', '  ingress:\n    - from:\n        - podSelector: {}\n'),
    ("helm", "networkPolicy.enabled ignored", "deploy/helm/ai-gateway/templates/networkpolicy.yaml", "{{- if .Values.networkPolicy.enabled }}", "{{- if true }}"),
    ("helm", "chart config invalid", "deploy/helm/ai-gateway/values.yaml", "      type: mock", "      type: mok"),
]


def selftest(ctx: Ctx, args):
    """Each mutation in its own copy of the repo's deploy files; its group must fail."""
    problems = []
    for group, what, rel, old, new in SELFTESTS:
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            shutil.copytree(ctx.root / "deploy", root / "deploy")
            for f in [".dockerignore", "Cargo.toml", "Cargo.lock", "README.md"]:
                if (ctx.root / f).exists():
                    shutil.copy(ctx.root / f, root / f)
            for dname in ["gateway", "shared", "lua", "tests", "benches"]:
                # only what the Dockerfile COPYs must exist; symlink, never written
                (root / dname).symlink_to(ctx.root / dname)
            mutate(root, rel, old, new)
            sub = Ctx(root, args)
            print(f"  ..    self-test: {what} ({rel})")
            import io

            buf = io.StringIO()
            saved = sys.stdout
            sys.stdout = buf
            try:
                GROUPS[group](sub)
            finally:
                sys.stdout = saved
            if sub.failed == 0:
                problems.append(f"{what}: the {group} checks still passed")
            else:
                # what caught it: the failing check's first message line
                lines = buf.getvalue().splitlines()
                i = next(i for i, l in enumerate(lines) if l.startswith("  FAIL"))
                why = " | ".join(l.strip() for l in lines[i + 1:i + 3] if l.startswith("        "))
                print(f"        caught: {why[:200]}")
    need(not problems, "broken files the checks did not catch:\n" + "\n".join(problems))


# ---------------------------------------------------------------- groups


def g_docker(ctx: Ctx):
    ctx.run("Dockerfile: hadolint", docker_hadolint, ctx)
    ctx.run("Dockerfile: multi-stage, --release --locked, non-root, HEALTHCHECK via --probe, EXPOSE", docker_structure, ctx)
    ctx.run("gateway --help offers --probe (the HEALTHCHECK's command)", docker_probe_flag, ctx)
    ctx.run("image default config (deploy/docker/gateway.yaml) passes --check-config", docker_default_config, ctx)


def g_compose(ctx: Ctx):
    ctx.run("compose.yaml: Compose Specification (compose_spec parser, strict)", compose_schema, ctx)
    ctx.run("compose.yaml: replicas, mounts, config (--check-config), HAProxy, Prometheus, Grafana, collector wiring", compose_wiring, ctx)
    ctx.run("compose.yaml: credentials required (no defaults), Redis requires the replicas' password", compose_secrets, ctx)


def g_k8s(ctx: Ctx):
    ctx.run(f"deploy/k8s: Kubernetes {', '.join(ctx.k8s_versions)} schemas (strict) and monitor CRD schemas", k8s_schemas, ctx)
    ctx.run("deploy/k8s: wiring, probes, security, shutdown budget, config (--check-config), secrets, Redis password, NetworkPolicies", k8s_wiring, ctx)


def g_helm(ctx: Ctx):
    ctx.run("chart: every top-level value documented in its README", helm_values_documented, ctx)
    for v in helm_value_files(ctx):
        name = v.name if v else "default values"
        ctx.run(f"chart: helm lint --strict ({name})", helm_lint, ctx, v)
        ctx.run(f"chart: rendering ({name}): schemas, wiring, config (--check-config), Redis password, NetworkPolicies", helm_rendering, ctx, v)
    ctx.run("chart: refuses short grace, both monitors, missing or double Redis", helm_refusals, ctx)
    ctx.run("chart: admin token, key pepper and Redis password generated (random, 32+ characters)", helm_generated_secrets, ctx)
    ctx.run("chart: redis.passwordSecret, secrets.existingSecret, secrets.keyPepper, networkPolicy.enabled", helm_secret_values, ctx)


GROUPS = {"docker": g_docker, "compose": g_compose, "k8s": g_k8s, "helm": g_helm}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway", required=True, help="the gateway binary (for --check-config)")
    ap.add_argument("--helm")
    ap.add_argument("--hadolint")
    ap.add_argument("--k8s-version", action="append", help=f"Kubernetes version(s) to validate against (default {K8S_MIN} and the newest known)")
    ap.add_argument("--only", action="append", choices=[*GROUPS, "selftest"])
    ap.add_argument("--root", type=Path, default=REPO)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    ctx = Ctx(args.root, args)
    groups = args.only or [*GROUPS, "selftest"]
    for g in groups:
        print(f"-- {g}")
        if g == "selftest":
            ctx.run(f"self-test: {len(SELFTESTS)} broken copies of deploy/ each fail their checks", selftest, ctx, args)
        else:
            GROUPS[g](ctx)
    print(f"deploy: {ctx.passed} passed, {ctx.failed} failed")
    return 0 if ctx.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
