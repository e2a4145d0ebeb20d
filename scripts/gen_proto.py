"""Generate the Python for grpc/**/*.proto (protobuf + grpclib stubs).

    .venv/bin/python scripts/gen_proto.py [OUT_ROOT]

The service Core serves (core) goes to the inbound package core_app/rpc/generated; the clients it
calls go beside the adapter that calls them: auth and roles to core_app/security/generated,
adminfeatures to core_app/adminfeatures/generated.

protoc names modules after the proto path (`core.v1.core_pb2`); the imports are rewritten to the
installed package path so `grpc/` stays a contract folder and nothing shadows another package.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "grpc"
# Python package -> the proto packages (top folders of grpc/) generated into it.
TARGETS: dict[str, tuple[str, ...]] = {
    "core_app.rpc.generated": ("core",),
    "core_app.security.generated": ("auth", "roles"),
    "core_app.adminfeatures.generated": ("adminfeatures",),
}


def package_dir(root: Path, package: str) -> Path:
    return root.joinpath(*package.split("."))


def generate_all(root: Path = ROOT) -> list[Path]:
    """Every target package under `root` (the repository, or a scratch folder)."""
    return [
        path
        for package, protos in TARGETS.items()
        for path in generate(package_dir(root, package), package, protos)
    ]


def generate(out_dir: Path, package: str, proto_packages: tuple[str, ...]) -> list[Path]:
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    protos = sorted(
        str(p.relative_to(PROTO_ROOT))
        for p in PROTO_ROOT.rglob("*.proto")
        if p.relative_to(PROTO_ROOT).parts[0] in proto_packages
    )
    include = str(Path(protoc.__file__).parent / "_proto")
    # The plugin sits next to the interpreter; PATH may not include the virtualenv's bin.
    plugin = Path(sys.executable).parent / "protoc-gen-grpclib_python"
    args = [
        "protoc",
        f"--plugin=protoc-gen-grpclib_python={plugin}",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpclib_python_out={out_dir}",
    ]
    if protoc.main([*args, *protos]) != 0:
        raise SystemExit("protoc failed")
    written = sorted(out_dir.rglob("*.py"))
    packages = {p.split("/")[0] for p in protos}
    pattern = re.compile(rf"\b({'|'.join(sorted(packages))})\.(\w+)\.(\w+_pb2)\b")
    for path in written:
        text = path.read_text()
        text = pattern.sub(rf"{package}.\1.\2.\3", text)
        path.write_text(text)
    for directory in {out_dir, *(p.parent for p in written)}:
        while directory != out_dir.parent:
            (directory / "__init__.py").touch()
            directory = directory.parent
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    for path in generate_all(target):
        print(path.relative_to(target))
