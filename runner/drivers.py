"""Reading driver files: OMB's `name` and `driverClass`, the rest for the driver.

OMB's own driver files name Java classes; the ones that have a counterpart
here are mapped to it, so OMB's `driver-redis/redis.yaml` works unchanged.

Everything that can be wrong with a driver file is found here, in the
coordinator, before a worker starts: the class is imported, and a driver
class may offer two optional hooks that are called when present:

    check_config(config, source) -> None          (classmethod)
        refuse a bad value with a DriverConfigError
    async check_server(config, source) -> None    (classmethod)
        fail within seconds if the system the file names cannot be reached
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from aioredismq.errors import DriverConfigError
from runner.files import read_input
from runner.local_worker import load_driver_class
from runner.protocol import DriverSpec
from runner.yamlfiles import load_yaml

__all__ = [
    "DEFAULT_DRIVER_FILE",
    "JAVA_DRIVER_CLASSES",
    "check_driver_server",
    "load_driver_spec",
    "with_address",
]

logger = logging.getLogger(__name__)

DEFAULT_DRIVER_FILE = Path(__file__).resolve().parent.parent / "driver" / "redis.yaml"

JAVA_DRIVER_CLASSES = {
    "io.openmessaging.benchmark.driver.redis.RedisBenchmarkDriver": (
        "driver.redis_streams.RedisStreamsDriver"
    ),
}


def _read_yaml(path: Path, source: str) -> dict[str, Any]:
    expected = "expected a driver YAML file such as driver/redis.yaml"
    try:
        text = read_input(path).decode("utf-8")
    except FileNotFoundError as err:
        raise DriverConfigError(
            source, None, str(path.resolve()), "no such file; " + expected
        ) from err
    except OSError as err:
        raise DriverConfigError(
            source,
            None,
            str(path.resolve()),
            f"cannot read it ({err.strerror}); {expected}",
        ) from err
    except UnicodeDecodeError as err:
        raise DriverConfigError(
            source, None, str(path.resolve()), f"not UTF-8 text; {expected}"
        ) from err
    try:
        document = load_yaml(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        if mark is not None:
            problem = f"line {mark.line + 1}: {problem}"
        raise DriverConfigError(source, None, problem, "expected valid YAML") from err
    if not isinstance(document, dict):
        kind = "an empty document" if document is None else type(document).__name__
        raise DriverConfigError(
            source, None, kind, "expected a mapping of driver keys at the top level"
        )
    return document


def load_driver_spec(path: str | Path) -> DriverSpec:
    """Read a driver file; map a known Java `driverClass` to ours."""
    source = str(path)
    config = _read_yaml(Path(path), source)
    name = config.get("name")
    if not isinstance(name, str) or not name.strip():
        missing = "" if "name" in config else "the key is missing; "
        raise DriverConfigError(
            source,
            "name",
            name,
            f"{missing}expected a non-empty string, the driver's name in result "
            "file names (e.g. Redis)",
        )
    driver_class = config.get("driverClass")
    if not isinstance(driver_class, str) or not driver_class.strip():
        raise DriverConfigError(
            source,
            "driverClass",
            driver_class,
            "expected a Python class path such as "
            "driver.redis_streams.RedisStreamsDriver",
        )
    mapped = JAVA_DRIVER_CLASSES.get(driver_class)
    if mapped is not None:
        logger.info("%s: driverClass %s runs as %s", source, driver_class, mapped)
        driver_class = mapped
    elif driver_class.startswith("io.openmessaging."):
        known = ", ".join(sorted(JAVA_DRIVER_CLASSES))
        raise DriverConfigError(
            source,
            "driverClass",
            driver_class,
            f"OMB Java drivers with a counterpart here: {known}",
        )
    spec = DriverSpec(name, driver_class, config, source)
    # Import the class here rather than leave it to the workers, so a wrong
    # name is reported before any process starts.
    check_config = getattr(load_driver_class(spec), "check_config", None)
    if check_config is not None:
        check_config(spec.config, spec.source)
    return spec


async def check_driver_server(spec: DriverSpec) -> None:
    """Fail fast when the driver's `check_server` finds nothing to talk to."""
    check_server = getattr(load_driver_class(spec), "check_server", None)
    if check_server is not None:
        await check_server(spec.config, spec.source)


def with_address(spec: DriverSpec, host: str, port: int) -> DriverSpec:
    """The same driver pointed at another server (the embedded one)."""
    config = dict(spec.config, redisHost=host, redisPort=port)
    config.pop("redisUser", None)
    config.pop("redisPass", None)
    return DriverSpec(spec.name, spec.driver_class, config, spec.source)
