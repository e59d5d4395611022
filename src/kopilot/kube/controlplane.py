"""A real Kubernetes control plane on 127.0.0.1, for tests and benchmarks.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (which plays the kubelets:
it keeps fake nodes Ready and walks pods through their lifecycle) run as child processes in a
work directory, on free loopback ports. Nothing here downloads anything: the binaries come from
`scripts/setup.d/50-controlplane.sh`, which builds them into a folder handed over as `Binaries`.

The API server serves TLS with a certificate from a throw-away CA, authenticates one static
bearer token (user `kopilot-admin` in `system:masters`) and authorises with RBAC, so RBAC rules can
be tested against it. `kubeconfig` holds both; every component uses it.

    with controlplane.running(binaries=b, workdir=tmp, clock=clocks.WallClock()) as cp:
        kubernetes.config.load_kube_config(str(cp.kubeconfig))

Every child is in its own process group, is asked to die with its parent (PR_SET_PDEATHSIG) and
is killed, group and all, when the control plane stops, also when start-up fails half way.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from kopilot.kits import clocks
from kopilot.model import errors

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
ADMIN_USER = "kopilot-admin"
SERVICE_CIDR = "10.96.0.0/24"  # allocated, never routed: nothing listens on these addresses


class ControlPlaneError(errors.PermanentError):
    """The control plane could not be started; the message says which part and why."""


class BinariesMissingError(ControlPlaneError):
    """Some binaries are not built yet: run scripts/setup.d/50-controlplane.sh."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Binaries:
    """Where the control-plane executables are."""

    bin_dir: Path

    def path(self, component: str) -> Path:
        return self.bin_dir / component

    @property
    def kwok_stages(self) -> Path:
        """kwok's Stage objects (how fake nodes and pods progress), written by the build."""
        return self.bin_dir / "kwok-stages.yaml"

    def missing(self) -> list[str]:
        missing = [c for c in COMPONENTS if not os.access(self.path(c), os.X_OK)]
        return missing if self.kwok_stages.is_file() else [*missing, self.kwok_stages.name]

    def require(self) -> None:
        missing = self.missing()
        if missing:
            raise BinariesMissingError(
                f"control-plane binaries missing in {self.bin_dir}: {', '.join(missing)}; "
                "build them with `bash scripts/setup.d/50-controlplane.sh` "
                "(about 25 minutes from an empty cache on 2 cores, instant afterwards)"
            )


def read_versions(versions_file: Path) -> dict[str, str]:
    """The KEY=value lines of hack/controlplane/versions.env (K8S_VERSION, KWOK_VERSION, ...)."""
    versions: dict[str, str] = {}
    for number, line in enumerate(versions_file.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ControlPlaneError(f"{versions_file}:{number}: expected KEY=value, got {line!r}")
        versions[key.strip()] = value.strip()
    if "K8S_VERSION" not in versions:
        raise ControlPlaneError(f"{versions_file}: no K8S_VERSION=... line")
    return versions


def pinned_binaries(*, cache: Path, versions_file: Path) -> Binaries:
    """The binaries the build script makes for the versions pinned in `versions_file`.

    The build puts them in `cache`/controlplane/<K8S_VERSION>/bin, `cache` being $KOPILOT_CACHE.
    """
    version = read_versions(versions_file)["K8S_VERSION"]
    return Binaries(bin_dir=cache / "controlplane" / version / "bin")


@dataclass(frozen=True, slots=True, kw_only=True)
class Component:
    """One running child process and the log it writes."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlPlane:
    """A running control plane: where to reach it and its processes."""

    workdir: Path
    kubeconfig: Path
    server: str
    token: str
    ca_file: Path
    components: tuple[Component, ...]

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of each component, read from /proc (0 if it is gone)."""
        return {c.name: _rss_bytes(c.process.pid) for c in self.components}


@contextlib.contextmanager
def running(
    *, binaries: Binaries, workdir: Path, clock: clocks.Clock, timeout: float = 180.0
) -> Iterator[ControlPlane]:
    """Start the control plane in `workdir`, yield it once it serves, stop it on the way out."""
    binaries.require()
    workdir.mkdir(parents=True, exist_ok=True)
    started: list[Component] = []
    try:
        yield _start(binaries, workdir, clock, timeout, started)
    finally:
        stop(started, clock)


def _start(
    binaries: Binaries, workdir: Path, clock: clocks.Clock, timeout: float, started: list[Component]
) -> ControlPlane:
    deadline = clock.now() + timeout
    pki = _make_pki(workdir / "pki")
    token = secrets.token_hex(16)
    (workdir / "tokens.csv").write_text(f'{token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
    ports = _free_ports(7)
    etcd_url = f"http://127.0.0.1:{ports[0]}"
    server = f"https://127.0.0.1:{ports[2]}"
    kubeconfig = workdir / "kubeconfig.yaml"
    kubeconfig.write_text(yaml.safe_dump(_kubeconfig(server, pki["ca.crt"], token)))

    def launch(name: str, args: Sequence[str], env: dict[str, str] | None = None) -> Component:
        component = _spawn(name, [str(binaries.path(name)), *args], workdir / "logs", env)
        started.append(component)
        return component

    etcd = launch(
        "etcd",
        [
            "--name=kopilot-test",
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{ports[1]}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{ports[1]}",
            f"--initial-cluster=kopilot-test=http://127.0.0.1:{ports[1]}",
            "--unsafe-no-fsync",  # a test cluster: speed over durability
            "--log-level=warn",
        ],
    )
    _wait(etcd, clock, deadline, lambda: _http_ok(f"{etcd_url}/health", None, None))

    apiserver = launch(
        "kube-apiserver",
        [
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports[2]}",
            f"--tls-cert-file={pki['apiserver.crt']}",
            f"--tls-private-key-file={pki['apiserver.key']}",
            f"--client-ca-file={pki['ca.crt']}",
            f"--token-auth-file={workdir / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-account-key-file={pki['sa.key']}",
            f"--service-account-signing-key-file={pki['sa.key']}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--endpoint-reconciler-type=none",  # it would publish 127.0.0.1, which is refused
            "--profiling=false",
        ],
    )
    ca = ssl.create_default_context(cafile=str(pki["ca.crt"]))
    _wait(apiserver, clock, deadline, lambda: _http_ok(f"{server}/readyz", ca, token))

    common = [f"--kubeconfig={kubeconfig}", "--leader-elect=false", "--bind-address=127.0.0.1"]
    controller_manager = launch(
        "kube-controller-manager",
        [
            *common,
            f"--secure-port={ports[3]}",
            f"--cert-dir={workdir / 'certs-controller-manager'}",
            f"--service-account-private-key-file={pki['sa.key']}",
            f"--root-ca-file={pki['ca.crt']}",
            "--use-service-account-credentials=false",
        ],
    )
    scheduler = launch(
        "kube-scheduler",
        [*common, f"--secure-port={ports[4]}", f"--cert-dir={workdir / 'certs-scheduler'}"],
    )
    kwok = launch(
        "kwok",
        [
            f"--kubeconfig={kubeconfig}",
            f"--config={binaries.kwok_stages}",
            "--manage-all-nodes=true",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{ports[5]}",
            "--node-ip=127.0.0.1",
            "--cidr=10.244.0.0/16",  # pod IPs it hands out; never routed
        ],
        env={**os.environ, "HOME": str(workdir)},  # kwok would also read ~/.kwok/kwok.yaml
    )
    insecure = ssl._create_unverified_context()  # their self-signed serving certs; loopback only
    _wait(
        controller_manager,
        clock,
        deadline,
        lambda: _http_ok(f"https://127.0.0.1:{ports[3]}/healthz", insecure, None),
    )
    _wait(
        scheduler,
        clock,
        deadline,
        lambda: _http_ok(f"https://127.0.0.1:{ports[4]}/healthz", insecure, None),
    )
    _wait(
        kwok, clock, deadline, lambda: _http_ok(f"http://127.0.0.1:{ports[5]}/healthz", None, None)
    )
    # Pods can be created once the service-account controller made the namespace's default account.
    default_sa = f"{server}/api/v1/namespaces/default/serviceaccounts/default"
    _wait(controller_manager, clock, deadline, lambda: _http_ok(default_sa, ca, token))
    return ControlPlane(
        workdir=workdir,
        kubeconfig=kubeconfig,
        server=server,
        token=token,
        ca_file=pki["ca.crt"],
        components=tuple(started),
    )


def stop(components: Sequence[Component], clock: clocks.Clock, grace: float = 10.0) -> None:
    """SIGTERM each process group (newest first), wait up to `grace` seconds, then SIGKILL."""
    for component in reversed(components):
        _signal_group(component.process, signal.SIGTERM)
    deadline = clock.now() + grace
    for component in reversed(components):
        while component.process.poll() is None and clock.now() < deadline:
            clock.sleep(0.05)
        _signal_group(component.process, signal.SIGKILL)  # also reaps any stray grandchildren
        component.process.wait()


def _spawn(name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None) -> Component:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509  (only prctl: no locks, no allocation)
        )
    return Component(name=name, process=process, log=log)


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGKILL it when the parent dies (no orphans)."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _wait(
    component: Component, clock: clocks.Clock, deadline: float, ready: Callable[[], bool]
) -> None:
    while not ready():
        code = component.process.poll()
        if code is not None:
            raise ControlPlaneError(
                f"{component.name} exited with code {code} during start-up; "
                f"last lines of {component.log}:\n{component.log_tail()}"
            )
        if clock.now() > deadline:
            raise ControlPlaneError(
                f"{component.name} not ready in time; last lines of {component.log}:\n"
                f"{component.log_tail()}"
            )
        clock.sleep(0.1)


def _http_ok(url: str, context: ssl.SSLContext | None, token: str | None) -> bool:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so they differ, then released)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _make_pki(directory: Path) -> dict[str, Path]:
    """A throw-away CA, the API server's serving certificate and the service-account key."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {name: directory / name for name in ("ca.crt", "ca.key", "apiserver.crt")}
    files |= {name: directory / name for name in ("apiserver.key", "apiserver.csr", "sa.key")}
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    commands = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         "/CN=kopilot-test-ca", "-keyout", files["ca.key"], "-out", files["ca.crt"]],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver",
         "-keyout", files["apiserver.key"], "-out", files["apiserver.csr"]],
        ["x509", "-req", "-days", "2", "-in", files["apiserver.csr"], "-CA", files["ca.crt"],
         "-CAkey", files["ca.key"], "-CAcreateserial", "-extfile", directory / "san.ext",
         "-out", files["apiserver.crt"]],
        ["genrsa", "-out", files["sa.key"], "2048"],
    ]  # fmt: skip
    for args in commands:
        try:
            subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)
        except FileNotFoundError as e:
            raise ControlPlaneError("`openssl` is needed to make test certificates") from e
        except subprocess.CalledProcessError as e:
            raise ControlPlaneError(
                f"openssl {args[0]} failed: {e.stderr.decode(errors='replace')}"
            ) from e
    return files


def _kubeconfig(server: str, ca_file: Path, token: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kopilot-test",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": ADMIN_USER, "user": {"token": token}}],
        "contexts": [
            {"name": "kopilot-test", "context": {"cluster": "kopilot-test", "user": ADMIN_USER}}
        ],
        "current-context": "kopilot-test",
    }


def _rss_bytes(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
