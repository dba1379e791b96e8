"""python-tuf (ngclient) on the refresh benchmark's workload: the peer column.

Usage: ngclient_refresh.py METADATA_URL TARGETS_URL TRUSTED_ROOT TARGETS_FILE WORKDIR
TARGETS_FILE lists one target path per line. Runs a cold refresh (fresh metadata directory)
and a warm one (a new Updater over the same directory), each followed by get_targetinfo of
every listed target, and prints {"cold_s", "warm_s", "cold_requests", "warm_requests"}.
Import time is not measured. Exits non-zero if a target is missing or verification fails.
"""
import json
import os
import sys
import time

from tuf.ngclient import Updater, Urllib3Fetcher


class CountingFetcher(Urllib3Fetcher):
    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def _fetch(self, url):
        self.requests += 1
        return super()._fetch(url)


def run(metadata_url, targets_url, meta_dir, bootstrap, targets):
    fetcher = CountingFetcher()
    start = time.perf_counter()
    updater = Updater(
        metadata_dir=meta_dir,
        metadata_base_url=metadata_url,
        target_base_url=targets_url,
        fetcher=fetcher,
        bootstrap=bootstrap,
    )
    updater.refresh()
    for t in targets:
        if updater.get_targetinfo(t) is None:
            sys.exit(f"target {t} not found")
    return time.perf_counter() - start, fetcher.requests


def main(metadata_url, targets_url, root, targets_file, work):
    meta_dir = os.path.join(work, "metadata")
    os.makedirs(meta_dir, exist_ok=True)
    with open(root, "rb") as f:
        root_bytes = f.read()
    with open(targets_file) as f:
        targets = [line.strip() for line in f if line.strip()]
    cold, cold_req = run(metadata_url, targets_url, meta_dir, root_bytes, targets)
    warm, warm_req = run(metadata_url, targets_url, meta_dir, None, targets)
    print(json.dumps({"cold_s": cold, "warm_s": warm,
                      "cold_requests": cold_req, "warm_requests": warm_req}))


if __name__ == "__main__":
    main(*sys.argv[1:6])
