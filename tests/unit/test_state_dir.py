from pathlib import Path

from core_app.app import discard_state_after_crash, mark_clean_shutdown
from core_app.settings import Settings


def test_state_survives_a_clean_shutdown_and_not_a_crash(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, worker_id="w1")
    table_file = settings.worker_data_dir / "v1" / "tables" / "customers-0.db"
    table_file.parent.mkdir(parents=True)
    table_file.write_text("rocksdb")

    mark_clean_shutdown(settings)
    assert discard_state_after_crash(settings) is False
    assert table_file.exists()

    # The marker is consumed at start: a run that dies without writing it again is a crash.
    assert discard_state_after_crash(settings) is True
    assert not table_file.exists()


def test_fresh_worker_has_nothing_to_discard(tmp_path: Path) -> None:
    assert discard_state_after_crash(Settings(data_dir=tmp_path, worker_id="new")) is False
