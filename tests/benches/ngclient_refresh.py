"""python-tuf (ngclient) on the refresh benchmark's workload: the peer column.

Usage: ngclient_refresh.py METADATA_URL TARGETS_URL TRUSTED_ROOT TARGETS_FILE WORKDIR MODE
TARGETS_FILE lists one target path per line. MODE "cold" refreshes into a fresh metadata
directory under WORKDIR, "warm" with a new Updater over the directory a cold run left; each
then calls get_targetinfo for every listed target. Prints {"secs", "requests", "peak_kib"}:
the refresh time (import time not measured) and this process's peak resident memory. Exits
non-zero if a target is missing or verification fails.
"""
import json
import os
import resource
import sys
import time

from tuf.ngclient import Updater, UpdaterConfig, Urllib3Fetcher


class CountingFetcher(Urllib3Fetcher):
    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def _fetch(self, url):
        self.requests += 1
        return super()._fetch(url)


def main(metadata_url, targets_url, root, targets_file, work, mode):
    meta_dir = os.path.join(work, "metadata")
    os.makedirs(meta_dir, exist_ok=True)
    bootstrap = None
    if mode == "cold":
        with open(root, "rb") as f:
            bootstrap = f.read()
    with open(targets_file) as f:
        targets = [line.strip() for line in f if line.strip()]
    fetcher = CountingFetcher()
    # Every delegated role must be walkable (python-tuf's default stops at 32), and a
    # million-target role is larger than its default cap on targets metadata.
    config = UpdaterConfig(max_delegations=100_000, targets_max_length=2**32)
    start = time.perf_counter()
    updater = Updater(
        metadata_dir=meta_dir,
        metadata_base_url=metadata_url,
        target_base_url=targets_url,
        fetcher=fetcher,
        bootstrap=bootstrap,
        config=config,
    )
    updater.refresh()
    for t in targets:
        if updater.get_targetinfo(t) is None:
            sys.exit(f"target {t} not found")
    secs = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"secs": secs, "requests": fetcher.requests, "peak_kib": peak}))


if __name__ == "__main__":
    main(*sys.argv[1:7])
