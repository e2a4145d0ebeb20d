from core_app.events.codec import load_contracts
from core_app.settings import REPO_ROOT
from core_app.topics import RFM_UPDATED


def test_every_avro_contract_parses_and_is_named_by_its_topic() -> None:
    contracts = load_contracts(REPO_ROOT / "avro")
    assert RFM_UPDATED in contracts
    rfm = contracts[RFM_UPDATED].raw_schema
    names = [f["name"] for f in rfm["fields"]]
    assert names == ["event_id", "merchant_id", "customer_id", "rfm_score", "occurred_at"]
    assert rfm["fields"][1]["type"]["logicalType"] == "uuid"
    assert rfm["fields"][4]["type"]["logicalType"] == "timestamp-millis"


def test_every_consumed_topic_has_an_agent_and_every_table_is_registered() -> None:
    from core_app.fanout.service import TOPICS as FANOUT_TOPICS
    from core_app.main import AGENTS, TABLES, app
    from core_app.topics import CONSUMED, INTERNAL, UPDATES

    subscribed = {topic for agent in app.agents.values() for topic in agent.channel.topics}
    # core.updates has no agent: every worker's fan-out reads it without a group (D34).
    assert subscribed == {*CONSUMED, *INTERNAL} - {UPDATES}
    assert UPDATES in FANOUT_TOPICS
    assert len(AGENTS) == len(app.agents)
    assert (
        set(app.tables)
        == {table.name for table in TABLES}
        == {"customers", "program_settings", "import_logs"}
    )
