"""Test support for S3: moto's server mode on loopback, test credentials, and the AWS CLI on sandbox hosts.

The AWS CLI (`awscli`) and moto are test dependencies installed in the venv.
Sandbox hosts find the CLI through a two-line `aws` wrapper in their bin
directory (which is on their PATH); the `nocli` host's PATH leaves it out.
Credentials are throwaway values in files of their own, reached through
`AWS_SHARED_CREDENTIALS_FILE` / `AWS_CONFIG_FILE` in each host's environment
(sshd `SetEnv`), exactly as a real host would have its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from agentsync_fleet.sandbox_fleet import install_tool

VENV_BIN = Path(sys.executable).parent
PROFILE = "fleet"
ACCESS_KEY = "AKIAFLEETTEST0000001"
SECRET_KEY = "fleet-test-secret-never-printed-0123456789"
REGION = "us-east-1"


def aws_cli() -> Path:
    path = VENV_BIN / "aws"
    if not path.exists():
        raise RuntimeError(f"{path} is missing: install the test dependencies (`make setup` installs .[test])")
    return path


def write_aws_files(directory: Path) -> dict[str, str]:
    """A credentials file with one profile (no default: a sync that forgot --profile fails) and a config."""
    credentials, config = directory / "credentials", directory / "config"
    credentials.write_text(f"[{PROFILE}]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    config.write_text(f"[profile {PROFILE}]\nregion = {REGION}\n")
    return {"AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_CONFIG_FILE": str(config)}


def install_aws_cli(sandbox, hosts: tuple[str, ...], env: dict[str, str]) -> None:
    for name in sandbox.hosts:
        sandbox.set_env(name, **env)
    for name in hosts:
        install_tool(sandbox, name, "aws", f"#!/bin/sh\nexec {aws_cli()} \"$@\"\n")


def laptop_env(env: dict[str, str]) -> dict[str, str]:
    """The controller's environment for a CLI run: the venv's `aws` first on PATH, the test credentials."""
    return {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}", **env}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """`moto_server -H 127.0.0.1 -p PORT`, started and waited for; every test uses its own bucket."""

    def __init__(self, process: subprocess.Popen, endpoint: str, log: Path):
        self.process = process
        self.endpoint = endpoint
        self.log = log

    @classmethod
    def start(cls, wait: float = 30.0) -> MotoServer:
        binary = VENV_BIN / "moto_server"
        if not binary.exists():
            raise RuntimeError(f"{binary} is missing: install the test dependencies (moto[server])")
        port = _free_port()
        log = Path(f"/tmp/moto-{port}.log")
        with log.open("wb") as out:
            process = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        server = cls(process, f"http://127.0.0.1:{port}", log)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(server.endpoint + "/", timeout=1):
                    return server
            except OSError:
                time.sleep(0.1)
        server.stop()
        raise RuntimeError(f"moto_server did not answer on {server.endpoint}: {log.read_text()[-800:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.unlink(missing_ok=True)

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY)


class Bucket:
    """One test's bucket on the moto server, and ways to look inside it."""

    def __init__(self, server: MotoServer):
        self.server = server
        self.name = f"fleet-{uuid.uuid4().hex[:12]}"
        self.client = server.client()
        self.client.create_bucket(Bucket=self.name)

    def url(self, prefix: str) -> str:
        return f"s3://{self.name}/{prefix}"

    def keys(self, prefix: str = "") -> dict[str, int]:
        """Every object under `prefix` → its size."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=data)

    def settings(self) -> dict:
        """The inventory's top-level `s3:` for this server."""
        return {"profile": PROFILE, "region": REGION, "endpoint_url": self.server.endpoint, "timeout": 120}
