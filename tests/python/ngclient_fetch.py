"""Refresh and download one target with python-tuf's ngclient, for the interoperability test.

Usage: ngclient_fetch.py METADATA_URL TARGETS_URL TRUSTED_ROOT TARGET_NAME WORKDIR
Prints a JSON object {"path": ..., "sha256": ..., "length": ...} for the downloaded file.
Exits non-zero (with python-tuf's exception) if anything fails verification.
"""
import hashlib
import json
import os
import sys

from tuf.ngclient import Updater


def main(metadata_url: str, targets_url: str, root: str, target: str, work: str) -> None:
    meta_dir = os.path.join(work, "metadata")
    dl_dir = os.path.join(work, "downloads")
    os.makedirs(meta_dir, exist_ok=True)
    os.makedirs(dl_dir, exist_ok=True)
    with open(root, "rb") as f:
        root_bytes = f.read()
    updater = Updater(
        bootstrap=root_bytes,
        metadata_dir=meta_dir,
        metadata_base_url=metadata_url,
        target_base_url=targets_url,
        target_dir=dl_dir,
    )
    updater.refresh()
    info = updater.get_targetinfo(target)
    if info is None:
        sys.exit(f"target {target} not found")
    path = updater.download_target(info)
    with open(path, "rb") as f:
        data = f.read()
    print(json.dumps({"path": path, "sha256": hashlib.sha256(data).hexdigest(), "length": len(data)}))


if __name__ == "__main__":
    main(*sys.argv[1:6])
