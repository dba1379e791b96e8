"""Write a TUF repository with python-tuf's Metadata API, for the interoperability test.

Usage: make_repo.py OUTDIR
Creates OUTDIR/metadata/{1.root.json,root.json,1.targets.json,1.snapshot.json,timestamp.json,
1.firmware.json} and OUTDIR/targets/<sha256>.<name> (consistent snapshots), with one target in
top-level targets and one in a delegated role, and prints a JSON summary on stdout.
"""
import hashlib
import json
import os
import sys
from datetime import datetime, timedelta, timezone

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer


def main(out: str) -> None:
    meta_dir = os.path.join(out, "metadata")
    tgt_dir = os.path.join(out, "targets")
    os.makedirs(meta_dir, exist_ok=True)
    os.makedirs(tgt_dir, exist_ok=True)
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=30)

    signers = {r: CryptoSigner.generate_ed25519() for r in ("root", "targets", "snapshot", "timestamp", "firmware")}
    root = Root(expires=expires, consistent_snapshot=True)
    for role in ("root", "targets", "snapshot", "timestamp"):
        root.add_key(signers[role].public_key, role)

    files = {
        "hello.txt": b"hello from python-tuf\n",
        "firmware-1.0.bin": os.urandom(4096) + b"python-tuf delegated firmware",
    }
    for name, data in files.items():
        sha = hashlib.sha256(data).hexdigest()
        with open(os.path.join(tgt_dir, f"{sha}.{name}"), "wb") as f:
            f.write(data)

    targets = Targets(expires=expires)
    targets.targets["hello.txt"] = TargetFile.from_data("hello.txt", files["hello.txt"], ["sha256", "sha512"])
    fw_key = signers["firmware"].public_key
    targets.delegations = Delegations(
        keys={fw_key.keyid: fw_key},
        roles={
            "firmware": DelegatedRole(
                name="firmware", keyids=[fw_key.keyid], threshold=1, terminating=True, paths=["firmware-*"]
            )
        },
    )
    delegated = Targets(expires=expires)
    delegated.targets["firmware-1.0.bin"] = TargetFile.from_data(
        "firmware-1.0.bin", files["firmware-1.0.bin"], ["sha256"]
    )

    ser = JSONSerializer(compact=False)

    def write(md: Metadata, name: str) -> bytes:
        data = md.to_bytes(ser)
        with open(os.path.join(meta_dir, name), "wb") as f:
            f.write(data)
        return data

    root_md = Metadata(root)
    root_md.sign(signers["root"])
    write(root_md, "1.root.json")
    write(root_md, "root.json")

    t_md = Metadata(targets)
    t_md.sign(signers["targets"])
    write(t_md, "1.targets.json")
    d_md = Metadata(delegated)
    d_md.sign(signers["firmware"])
    write(d_md, "1.firmware.json")

    snap = Snapshot(expires=expires)
    snap.meta["targets.json"] = MetaFile(version=1)
    snap.meta["firmware.json"] = MetaFile(version=1)
    s_md = Metadata(snap)
    s_md.sign(signers["snapshot"])
    s_bytes = write(s_md, "1.snapshot.json")

    ts = Timestamp(expires=expires)
    ts.snapshot_meta = MetaFile(version=1, length=len(s_bytes), hashes={"sha256": hashlib.sha256(s_bytes).hexdigest()})
    ts_md = Metadata(ts)
    ts_md.sign(signers["timestamp"])
    write(ts_md, "timestamp.json")

    print(json.dumps({name: hashlib.sha256(data).hexdigest() for name, data in files.items()}))


if __name__ == "__main__":
    main(sys.argv[1])
