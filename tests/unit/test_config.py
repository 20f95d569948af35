import json

import pytest

from ml_connector.config import ConfigError, load_settings

BASE_ENV = {
    "STATE_TABLE": "state",
    "SYNC_QUEUE_URL": "https://sqs.eu-north-1.amazonaws.com/123456789012/q",
    "VISMA_SECRET_ID": "arn:visma",
    "MARKETO_SECRET_ID": "arn:marketo",
    "MARKETO_MUNCHKIN_ID": "123-ABC-456",
}


def test_single_connection_from_environment():
    settings = load_settings(BASE_ENV)
    (conn,) = settings.connections
    assert conn.id == "default"
    assert conn.visma.base_url == "https://api.finance.visma.net"
    assert conn.marketo.munchkin_id == "123-ABC-456"
    assert conn.entities is None  # every entity the mapping has a section for
    assert conn.mapping is None
    assert (conn.reconcile_interval_hours, conn.drift_repair) == (168, False)  # weekly, no read-back
    assert (conn.marketo.calls_per_20s, conn.marketo.window_seconds) == (50, 20.0)


def test_single_connection_reconcile_settings_from_the_template_parameters():
    (conn,) = load_settings({**BASE_ENV, "RECONCILE_INTERVAL_HOURS": "24", "DRIFT_REPAIR": "true"}).connections
    assert (conn.reconcile_interval_hours, conn.drift_repair) == (24, True)
    with pytest.raises(ConfigError, match="reconcile_interval_hours"):
        load_settings({**BASE_ENV, "RECONCILE_INTERVAL_HOURS": "-1"})
    with pytest.raises(ConfigError, match="drift_repair"):
        load_settings({**BASE_ENV, "DRIFT_REPAIR": "sometimes"})


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"MARKETO_MUNCHKIN_ID": "evil.example.com"}, "munchkin_id"),
        ({"MARKETO_ENDPOINT_OVERRIDE": "https://attacker.example.com"}, "endpoint_override"),
        ({"VISMA_BASE_URL": "http://api.finance.visma.net"}, "base_url"),
        ({"STATE_TABLE": ""}, "state_table"),
        ({"VISMA_SECRET_ID": ""}, "secret_id"),
        ({"MARKETO_WINDOW_SECONDS": "10"}, "window_seconds"),  # shorter than Marketo's 20 s would overrun it
    ],
)
def test_bad_setting_fails_fast_naming_the_field(override, field):
    with pytest.raises(ConfigError, match=field):
        load_settings({**BASE_ENV, **override})


def test_loopback_endpoints_allowed_for_sandboxes():
    settings = load_settings({**BASE_ENV, "MARKETO_ENDPOINT_OVERRIDE": "http://127.0.0.1:8002/",
                              "VISMA_BASE_URL": "http://localhost:8001"})
    conn = settings.connections[0]
    assert conn.marketo.endpoint_override == "http://127.0.0.1:8002"
    assert conn.visma.base_url == "http://localhost:8001"


def test_connections_from_inline_json_and_file(tmp_path):
    connections = [
        {"id": "norway", "visma": {"secret_id": "v1"}, "marketo": {"secret_id": "m1", "munchkin_id": "111-AAA-111"}},
        {"id": "sweden", "visma": {"secret_id": "v2"}, "marketo": {"secret_id": "m2", "munchkin_id": "222-BBB-222"},
         "entities": ["supplier"], "mapping": "sweden.json"},
    ]
    inline = load_settings({**BASE_ENV, "CONNECTIONS_CONFIG": json.dumps(connections)})
    path = tmp_path / "connections.json"
    path.write_text(json.dumps({"connections": connections}))
    from_file = load_settings({**BASE_ENV, "CONNECTIONS_CONFIG": str(path)})
    assert [c.id for c in inline.connections] == [c.id for c in from_file.connections] == ["norway", "sweden"]
    assert inline.connection("sweden").entities == ("supplier",)
    # A mapping path in a connections file is relative to that file.
    assert from_file.connection("sweden").mapping == str(tmp_path / "sweden.json")
    assert inline.connection("sweden").mapping == "sweden.json"


def test_a_shipped_mapping_named_in_a_connections_file_stays_a_shipped_name(tmp_path):
    document = {"connections": [{"id": "c", "visma": {"secret_id": "v"},
                                 "marketo": {"secret_id": "m", "munchkin_id": "123-ABC-456"},
                                 "mapping": "with-contacts-as-leads.json"}]}
    path = tmp_path / "connections.json"
    path.write_text(json.dumps(document))
    assert load_settings({**BASE_ENV, "CONNECTIONS_CONFIG": str(path)}).connection("c").mapping == \
        "with-contacts-as-leads.json"
    (tmp_path / "with-contacts-as-leads.json").write_text("{}")  # a file of the user's own wins
    assert load_settings({**BASE_ENV, "CONNECTIONS_CONFIG": str(path)}).connection("c").mapping == \
        str(tmp_path / "with-contacts-as-leads.json")


def test_unknown_connection_key_is_rejected():
    bad = [{"id": "x", "visma": {"secret_id": "v", "colour": "red"}, "marketo": {"secret_id": "m",
                                                                                "munchkin_id": "111-AAA-111"}}]
    with pytest.raises(ConfigError, match="colour"):
        load_settings({**BASE_ENV, "CONNECTIONS_CONFIG": json.dumps(bad)})


def test_unreadable_connections_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="CONNECTIONS_CONFIG"):
        load_settings({**BASE_ENV, "CONNECTIONS_CONFIG": str(tmp_path / "missing.json")})
