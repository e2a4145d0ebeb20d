"""The .proto compiles to exactly the checked-in code, and the server serves what the proto says."""

from pathlib import Path

from core_app.components import Components
from core_app.rpc.core_service import CoreService
from core_app.rpc.generated.core.v1 import core_pb2
from core_app.settings import REPO_ROOT, get_settings
from scripts.gen_proto import TARGETS, generate_all, package_dir


def test_checked_in_code_matches_the_proto(tmp_path: Path) -> None:
    generate_all(tmp_path)
    for package in TARGETS:
        fresh, checked_in = package_dir(tmp_path, package), package_dir(REPO_ROOT, package)
        fresh_files = {p.relative_to(fresh): p.read_text() for p in fresh.rglob("*.py")}
        kept_files = {p.relative_to(checked_in): p.read_text() for p in checked_in.rglob("*.py")}
        assert fresh_files == kept_files, "run: .venv/bin/python scripts/gen_proto.py"


def test_served_methods_are_the_proto_methods() -> None:
    service = core_pb2.DESCRIPTOR.services_by_name["CoreService"]
    declared = {f"/core.v1.CoreService/{method.name}" for method in service.methods}
    assert set(CoreService(Components(get_settings())).__mapping__()) == declared
    assert "/core.v1.CoreService/GetCustomerRFM" in declared
