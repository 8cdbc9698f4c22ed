"""Flower's deployment engine on loopback: a SuperLink, 3 SuperNodes and ``flwr run`` as real processes run the app
project ``examples/flower_app`` (``lightning_unlearn.federated.apps``' ServerApp and ClientApp) on its tiny
federation over TLS (a certificate authority and a SuperLink certificate made for the test), and the unlearning
report it writes is checked."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "examples" / "flower_app"


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (each socket stays bound until all are picked)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _binary(name: str) -> str:
    """A Flower command from this interpreter's environment (else from PATH)."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.is_file() else shutil.which(name)
    assert found is not None, f"flwr is installed but its command {name!r} is not (looked next to {sys.executable} and on PATH)."
    return found


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"flower-superlink exited ({process.returncode}):\n{_tail(log)}"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"flower-superlink did not listen on 127.0.0.1:{port} within {timeout} s:\n{_tail(log)}")


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away certificate authority and a SuperLink certificate it signed for 127.0.0.1 / localhost:
    ``(ca.crt, server.pem, server.key)``, PEM files in ``folder``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def certificate(subject: str, public, extensions) -> x509.Certificate:
        builder = x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name("lightning-unlearn test CA"))
        builder = builder.public_key(public).serial_number(x509.random_serial_number())
        builder = builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(ca_key, hashes.SHA256())

    ca = certificate("lightning-unlearn test CA", ca_key.public_key(), [(x509.BasicConstraints(ca=True, path_length=None), True)])
    alt = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    server = certificate("127.0.0.1", key.public_key(), [(alt, False), (x509.BasicConstraints(ca=False, path_length=None), True)])
    paths = folder / "ca.crt", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else f"({path} is empty)"


def _started(pid: int) -> int | None:
    """A live process's start time (``/proc/<pid>/stat``); None when it is gone or a zombie. The start time tells a
    process from a later one that reuses its id."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in "ZX" else int(fields[19])


def _descendants(pids: list[int]) -> dict[int, int]:
    """Every live process below ``pids``, with its start time (Linux ``/proc``; Flower's SuperLink starts its
    SuperExec, and that its ServerApp, in sessions of their own, so killing our process groups alone misses them)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: dict[int, int] = {}
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found and (start := _started(child)) is not None:
                found[child] = start
                todo.append(child)
    return found


def _stop(processes: list[subprocess.Popen]) -> list[int]:
    """Stop every process we started, their process groups and everything they started; returns the ids of those
    still alive afterwards (none, unless something ignores SIGKILL)."""

    def signal_all(sig: int, below: dict[int, int]) -> None:
        for p in processes:
            if p.poll() is None:  # not reaped yet, so its id is still its group's
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, sig)
        for pid, start in below.items():
            if _started(pid) == start:  # still the process we saw, not a new one with its id
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)

    below = _descendants([p.pid for p in processes])
    signal_all(signal.SIGTERM, below)
    deadline = time.monotonic() + 15
    for p in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
    below |= _descendants([p.pid for p in processes if p.poll() is None])
    signal_all(signal.SIGKILL, below)
    for p in processes:
        p.wait(timeout=10)
    deadline = time.monotonic() + 10
    while (alive := [pid for pid, start in below.items() if _started(pid) == start]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


@pytest.mark.slow
def test_a_client_leaves_on_superlink_and_supernodes_over_tls(tmp_path):
    pytest.importorskip("flwr", reason="Flower (the `federated` extra) is not installed")
    pytest.importorskip("cryptography", reason="the test's certificates are made with `cryptography` (a Flower dependency)")
    from lightning_unlearn.benchmarking import b8

    link, *node_ports = _free_ports(4)
    ca, server_cert, server_key = _certificates(tmp_path)
    home = tmp_path / "flwr-home"
    home.mkdir()
    # The SuperLink connection `flwr run` uses (Flower >= 1.2x reads it from $FLWR_HOME/config.toml), over TLS.
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "loopback"\n\n[superlink.loopback]\naddress = "127.0.0.1:{link}"\nroot-certificates = "{ca}"\n'
    )
    env = {
        **os.environ,
        "FLWR_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        # The SuperLink and the SuperNodes start flower-superexec, flwr-serverapp and flwr-clientapp from PATH.
        "PATH": os.pathsep.join([str(Path(_binary("flower-superlink")).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    report_path = tmp_path / "report.json"
    processes: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> tuple[subprocess.Popen, Path]:
        log = tmp_path / f"{name}.log"
        with open(log, "w") as out:
            p = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        processes.append(p)
        return p, log

    try:
        superlink, link_log = start(
            "superlink", _binary("flower-superlink"), "--ssl-ca-certfile", str(ca), "--ssl-certfile", str(server_cert), "--ssl-keyfile", str(server_key),
            "--disable-runtime-dependency-installation", "--host", "127.0.0.1", "--port", str(link),
        )
        _wait_for_port(link, superlink, link_log)
        for i, port in enumerate(node_ports):
            start(
                f"supernode{i}",
                _binary("flower-supernode"),
                "--root-certificates",
                str(ca),
                "--superlink",
                f"127.0.0.1:{link}",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--node-config",
                f"partition-id={i} num-partitions=3",
            )
        run = subprocess.run(
            [_binary("flwr"), "run", str(APP), "loopback", "--stream", "--run-config", f"out='{report_path}' leaving=1"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=480,
        )
        logs = "\n".join(f"--- {p.name}\n{_tail(p)}" for p in sorted(tmp_path.glob("*.log")))
        assert run.returncode == 0, f"flwr run failed ({run.returncode}):\n{run.stdout}\n{run.stderr}\n{logs}"
        deadline = time.monotonic() + 30  # the stream ends with the run; the file is written just before
        while not report_path.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert report_path.exists(), f"The ServerApp wrote no report.\nflwr run:\n{run.stdout[-4000:]}\n{logs}"
    finally:
        left = _stop(processes)
    assert not left, f"Processes the SuperLink / SuperNodes started outlived them: {left}"

    report = json.loads(report_path.read_text())
    assert report["engine"] == "flower-deployment"
    assert report["request"] == {"kind": "client", "leaving_client": 1, "samples": 100}
    assert report["federation"] == {"num_clients": 3, "scheme": "iid", "seed": 0, "rounds": 1}
    assert sorted(report["nodes"]) == ["0", "1", "2"] and len(set(report["nodes"].values())) == 3
    rows = report["rows"]
    assert set(rows) == set(b8.ROWS)
    assert rows["original"]["bytes"] > 0 and rows["original"]["rounds"] == rows["retrain"]["rounds"] == 1
    # The oracle trains the 2 remaining clients of 3 (equal data): 2/3 of the original's messages, of equal size.
    assert rows["retrain"]["bytes"] / rows["original"]["bytes"] == pytest.approx(2 / 3, rel=1e-3)
    assert rows["retrain"]["comm_ratio"] == 1.0 and rows["foul"]["bytes"] == 0
    assert all(row["seconds"] > 0 for row in rows.values())


def test_the_run_config_picks_the_config_the_request_and_the_app_s_own_yaml(tmp_path, monkeypatch):
    pytest.importorskip("flwr", reason="Flower (the `federated` extra) is not installed")
    from lightning_unlearn.federated.apps import deployment_settings

    settings, scheme, seed = deployment_settings({"scale": "quick"})  # no `config`: federated_fmnist/<scale>
    assert settings["federation"]["num_clients"] == 10 and (scheme, seed) == ("dirichlet", 0)
    settings, scheme, seed = deployment_settings({"config": "federated_fmnist/quick", "leaving": 3, "scheme": "iid", "seed": 5})
    assert settings["federation"]["leaving"] == 3 and (scheme, seed) == ("iid", 5)
    # A relative path that is not in the working directory is looked up in the installed app's directory, which
    # Flower puts on sys.path (under $FLWR_HOME/apps) before loading the ServerApp.
    installed = tmp_path / "apps" / "lightning-unlearn.lightning-unlearn-federated.1.0.0.0123abcd"
    installed.mkdir(parents=True)
    shutil.copy(APP / "tiny.yaml", installed / "tiny.yaml")
    monkeypatch.setenv("FLWR_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(installed))
    settings, _, _ = deployment_settings({"config": "tiny.yaml", "leaving": -1})
    assert settings["federation"]["num_clients"] == 3 and settings["federation"]["leaving"] == 0  # -1: the config's
    with pytest.raises(ValueError, match=r"--leaving should be a client of the federation, in 0..2; got 3"):
        deployment_settings({"config": "tiny.yaml", "leaving": 3})
    with pytest.raises(ValueError, match="scheme"):
        deployment_settings({"config": "tiny.yaml", "scheme": "shards"})
    with pytest.raises(ValueError, match="should be a shipped config"):
        deployment_settings({"config": "nope.yaml"})
    # a class / samples request from the run config (checked like the command line's)
    settings, _, _ = deployment_settings({"config": "tiny.yaml", "request": "samples", "forget-fraction": 0.3})
    assert (settings["federation"]["request"], settings["federation"]["forget_fraction"]) == ("samples", 0.3)
    settings, _, _ = deployment_settings({"config": "tiny.yaml", "request": "", "forget-class": "", "forget-fraction": 0.0})
    assert "request" not in settings["federation"]  # the app's empty defaults keep the config's (a client leaving)
    with pytest.raises(ValueError, match=r"`forget_class` should be a class id"):
        deployment_settings({"config": "tiny.yaml", "request": "class", "forget-class": "coats"})
