"""Checks docker-compose.yml for production: services, ports, environment.

There is no compose plugin or docker daemon in CI, so the file is loaded as
YAML and held to what README "Production" promises; `docker compose config`
runs too where it exists. Usage: python3 tests/compose/check_compose.py
"""

import ipaddress
import pathlib
import shutil
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def fail(message):
    print(f"docker-compose.yml: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def main():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    check(set(services) == {"postgres", "otpgate", "nginx"}, f"services {sorted(services)}")

    postgres = services["postgres"]
    check("healthcheck" in postgres, "postgres has no health check")
    check(
        any(str(v).endswith(":/var/lib/postgresql/data") for v in postgres["volumes"]),
        "postgres data is not on a volume",
    )
    check("ports" not in postgres, "postgres must not be published")

    otpgate = services["otpgate"]
    env = otpgate["environment"]
    check(otpgate["deploy"]["replicas"] == 3, "otpgate must run three replicas")
    check("ports" not in otpgate, "otpgate must be reached only through nginx")
    check(
        otpgate["depends_on"]["postgres"]["condition"] == "service_healthy",
        "otpgate must wait for a healthy postgres",
    )
    check(otpgate["env_file"] == "otpgate.env", "otpgate secrets come from otpgate.env")
    for secret in ["OTPGATE_JWT_SECRET", "OTPGATE_ENCRYPTION_KEY", "DATABASE_URL"]:
        check(secret not in env, f"{secret} must come from the env file, not the compose file")
    check(env["OTPGATE_METRICS_BIND"].endswith(":9464"), "metrics listener")
    check(
        all(not str(port).startswith("9464") and ":9464" not in str(port)
            for service in services.values() for port in service.get("ports", [])),
        "the metrics port must not be published",
    )

    nginx = services["nginx"]
    proxy = nginx["networks"]["backend"]["ipv4_address"]
    check(
        ipaddress.ip_address(proxy) in ipaddress.ip_network(env["OTPGATE_TRUSTED_PROXIES"]),
        "OTPGATE_TRUSTED_PROXIES must be nginx's address",
    )
    subnet = compose["networks"]["backend"]["ipam"]["config"][0]["subnet"]
    check(ipaddress.ip_address(proxy) in ipaddress.ip_network(subnet), "nginx's address is on the network")
    check(nginx["ports"] == ["8080:80"], f"nginx ports {nginx['ports']}")
    for volume in nginx["volumes"]:
        source = volume.split(":")[0]
        check((ROOT / source).is_file(), f"{source} is missing")

    if shutil.which("docker") and subprocess.run(
        ["docker", "compose", "version"], capture_output=True
    ).returncode == 0:
        # The env files are the operator's; empty stand-ins let it parse.
        made = [ROOT / name for name in ["otpgate.env", "postgres.env"] if not (ROOT / name).exists()]
        for path in made:
            path.touch()
        try:
            subprocess.run(["docker", "compose", "config", "--quiet"], cwd=ROOT, check=True)
        finally:
            for path in made:
                path.unlink()
    else:
        print("docker compose is not available: checked the YAML only")
    print("docker-compose.yml: ok")


if __name__ == "__main__":
    main()
