"""Simulated lab hosts for the remote-board tests (issue 20 §4, §5): a twin (its stock pyOCD
probe server) with an RFC 2217 server in front of its console PTY, reached only over TCP, as a
NUCLEO on another machine would be; and a labgrid coordinator and exporters for them."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from rig.targets.twin import TwinTarget, free_port, start_twin

HERE = Path(__file__).resolve().parent
BUILD = HERE.parents[1] / "firmware" / "build"
BIN = Path(sys.executable).parent


@dataclass
class LabHost:
    """A simulated board host: a twin, and an RFC 2217 server in front of its console."""

    twin: TwinTarget
    rfc2217: subprocess.Popen
    url: str

    def stop(self) -> None:
        if self.rfc2217.poll() is None:
            self.rfc2217.kill()
            self.rfc2217.wait(5)
        self.twin.stop()


def start_rfc2217(device: str, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """pyserial's RFC 2217 server in front of ``device`` (on ``port``, default a free one);
    (the process, its rfc2217:// URL)."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "rfc2217_server.py"), device, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc, f"rfc2217://127.0.0.1:{port}"


def start_lab_host(log: Path, extra_args: list[str] | None = None) -> LabHost:
    twin = start_twin(ota_lan=("192.168.1.10", 5000), extra_args=extra_args or [], log_path=log)
    try:
        proc, url = start_rfc2217(twin.serial_port)
    except BaseException:
        twin.stop()
        raise
    return LabHost(twin, proc, url)


def labgrid_tool(name: str) -> str:
    tool = BIN / name
    if not tool.exists():
        raise AssertionError(f"{name} is not installed in the venv (labgrid, in the dev extra)")
    return str(tool)


@dataclass
class Farm:
    """A labgrid coordinator and one exporter per lab host, started in ``where``."""

    address: str
    procs: list[subprocess.Popen]
    where: Path

    def client(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            [labgrid_tool("labgrid-client"), "-x", self.address, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"labgrid-client {' '.join(args)}: {proc.stdout}{proc.stderr}")
        return proc.stdout + proc.stderr

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


def start_coordinator(where: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    log = (where / "coordinator.log").open("w")
    proc = subprocess.Popen(
        [labgrid_tool("labgrid-coordinator"), "-l", address], cwd=where, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60  # an exporter started before it listens gives up
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, address
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log_text = (where / "coordinator.log").read_text()
                raise AssertionError(f"labgrid-coordinator did not listen: {log_text}") from None
            time.sleep(0.2)


def start_farm(where: Path, hosts: list[LabHost], places: list[str]) -> Farm:
    """A coordinator, an exporter per host (``lab1``, ``lab2``: its board's probe server as
    PyOCDServer, its console as NetworkSerialPort, where its OTA connections arrive as
    OtaListen) and a place per host matching its exporter's resources."""
    where.mkdir(parents=True, exist_ok=True)
    proc, address = start_coordinator(where)
    farm = Farm(address, [proc], where)
    try:
        for i, host in enumerate(hosts, start=1):
            _, _, port = host.twin.probe_uid.rpartition(":")
            config = {
                "board": {
                    "NetworkSerialPort": {
                        "host": "127.0.0.1",
                        "port": int(host.url.rpartition(":")[2]),
                        "speed": 115200,
                        "protocol": "rfc2217",
                    },
                    "PyOCDServer": {"host": "127.0.0.1", "port": int(port)},
                    "OtaListen": {"host": "127.0.0.1", "port": host.twin.ota_bind[1]},
                }
            }
            path = where / f"exporter-lab{i}.yaml"
            path.write_text(yaml.safe_dump(config))
            log = (where / f"exporter-lab{i}.log").open("w")
            farm.procs.append(
                subprocess.Popen(
                    [labgrid_tool("labgrid-exporter"), "-c", address, "--name", f"lab{i}", str(path)],
                    cwd=where,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        _wait_for_resources(farm, len(hosts))
        for i, place in enumerate(places, start=1):
            farm.client("-p", place, "create")
            farm.client("-p", place, "add-match", f"lab{i}/board/*")
            farm.client("-p", place, "set-tags", "board=nucleo-f767")
    except BaseException:
        farm.stop()
        raise
    return farm


def _wait_for_resources(farm: Farm, exporters: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        out = farm.client("resources", check=False)
        if all(f"lab{i}/board/PyOCDServer" in out for i in range(1, exporters + 1)):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the exporters never showed their resources: {out}")
        time.sleep(0.5)
