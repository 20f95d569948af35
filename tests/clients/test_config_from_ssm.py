"""Deployed configuration lives in SSM Parameter Store: connections and mappings read from moto's server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from unittest import mock

import pytest

from localrun.aws import LocalAws
from ml_connector.config import ConfigError, load_settings
from ml_connector.sync.mapping import DEFAULT_MAPPING_PATH, MappingError, load_mapping


@pytest.fixture(scope="module")
def ssm() -> Iterator[object]:
    with LocalAws() as aws, mock.patch.dict(os.environ, aws.env()):
        yield aws.client("ssm")


def test_connections_and_mapping_come_from_parameters(ssm) -> None:
    mapping = json.loads(DEFAULT_MAPPING_PATH.read_text())
    mapping["customer"]["fields"]["vismaSegment"] = {"constant": "from-ssm"}
    ssm.put_parameter(Name="/ml-connector/mapping-no", Type="String", Value=json.dumps(mapping))
    connections = {"connections": [
        {"id": "norway", "visma": {"secret_id": "ml-connector/norway/visma"},
         "marketo": {"secret_id": "ml-connector/norway/marketo", "munchkin_id": "123-ABC-456"},
         "mapping": "ssm:/ml-connector/mapping-no"},
        {"id": "sweden", "visma": {"secret_id": "ml-connector/sweden/visma"},
         "marketo": {"secret_id": "ml-connector/sweden/marketo", "munchkin_id": "456-DEF-789"}}]}
    ssm.put_parameter(Name="/ml-connector/connections", Type="String", Value=json.dumps(connections))
    settings = load_settings({"STATE_TABLE": "t", "CONNECTIONS_CONFIG": "ssm:/ml-connector/connections"})
    assert [c.id for c in settings.connections] == ["norway", "sweden"]
    norway = settings.connection("norway")
    assert norway.mapping == "ssm:/ml-connector/mapping-no"
    loaded = load_mapping(norway.mapping)
    assert loaded.customer is not None and loaded.customer.fields["vismaSegment"].constant == "from-ssm"


def test_bad_documents_in_ssm_name_the_setting(ssm) -> None:
    ssm.put_parameter(Name="/ml-connector/broken", Type="String", Value='{"connections": [{"id": "x"}]}')
    with pytest.raises(ConfigError, match="visma"):
        load_settings({"STATE_TABLE": "t", "CONNECTIONS_CONFIG": "ssm:/ml-connector/broken"})
    ssm.put_parameter(Name="/ml-connector/bad-mapping", Type="String", Value='{"customer": {"fields": 3}}')
    with pytest.raises(MappingError, match="ssm:/ml-connector/bad-mapping.*fields"):
        load_mapping("ssm:/ml-connector/bad-mapping")


def test_missing_parameter_is_a_config_error(ssm) -> None:
    with pytest.raises(ConfigError, match="CONNECTIONS_CONFIG.*cannot read SSM parameter /ml-connector/none"):
        load_settings({"STATE_TABLE": "t", "CONNECTIONS_CONFIG": "ssm:/ml-connector/none"})
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping("ssm:/ml-connector/none")
