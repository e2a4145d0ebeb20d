"""The .proto compiles to exactly the checked-in code, and the server serves what the proto says."""

from pathlib import Path

from core_app.rpc.core_service import CoreService
from core_app.rpc.generated.core.v1 import core_pb2
from core_app.settings import REPO_ROOT
from scripts.gen_proto import generate


def test_checked_in_code_matches_the_proto(tmp_path: Path) -> None:
    fresh = tmp_path / "generated"
    generate(fresh)
    checked_in = REPO_ROOT / "core_app" / "rpc" / "generated"
    fresh_files = {p.relative_to(fresh): p.read_text() for p in fresh.rglob("*.py")}
    kept_files = {p.relative_to(checked_in): p.read_text() for p in checked_in.rglob("*.py")}
    assert fresh_files == kept_files, "run: .venv/bin/python scripts/gen_proto.py"


def test_served_methods_are_the_proto_methods() -> None:
    service = core_pb2.DESCRIPTOR.services_by_name["CoreService"]
    declared = {f"/core.v1.CoreService/{method.name}" for method in service.methods}
    assert set(CoreService().__mapping__()) == declared
    assert "/core.v1.CoreService/GetCustomerRFM" in declared
