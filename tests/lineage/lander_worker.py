"""A lander process the Kafka tests SIGKILL: ``lander_worker.py CONFIG_JSON CATALOG_JSON``
runs a :class:`KafkaLander` (the config's fields as JSON) on the Iceberg catalog's
properties until it is killed, printing ``ready`` once it consumes."""

from __future__ import annotations

import json
import sys

from lineage import IcebergLanding
from lineage.kafka import KafkaConfig
from lineage.lander import KafkaLander


def main(config_json: str, catalog_json: str) -> None:
    config = KafkaConfig(**json.loads(config_json))
    lake = IcebergLanding("test", json.loads(catalog_json))
    print("ready", flush=True)
    KafkaLander(config, lake, client_id="lander-worker").run()


if __name__ == "__main__":
    main(*sys.argv[1:])
