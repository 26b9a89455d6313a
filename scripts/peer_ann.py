#!/usr/bin/python3
"""The peers of `lookalike bench search --peers`: hnswlib's C++ HNSW (Debian python3-hnswlib) and
FAISS IndexHNSWFlat (Debian python3-faiss), run on the benchmark's own .fvecs files.

    scripts/peer_ann.py hnswlib|faiss BASE.fvecs QUERIES.fvecs TRUTH.ivecs \
        --M 16 --efc 200 --ef 10,20,40 --k 10 --build-threads 2

Builds with --build-threads threads (as ours), searches the queries as one batch on one thread per
ef (--repeat times; the fastest run counts, by wall clock and by the thread's CPU time), and prints
one JSON line: build time, peak RSS, and recall@k/QPS per ef. With --serve (how the benchmark runs
it) it prints the build line, then answers each ef read from stdin with one timed batch, so that
its runs interleave with ours under the same machine load. Vectors are
normalised (cosine), and read from a memory map in chunks, so a million 1280-d vectors are never
held twice. `scripts/setup --peers` installs the packages.
"""
import argparse
import json
import resource
import sys
import time

import numpy as np


def fvecs(path):
    raw = np.memmap(path, dtype=np.float32, mode="r")
    dim = int(raw[:1].view(np.int32)[0])
    return raw.reshape(-1, dim + 1)[:, 1:], dim


def ivecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    k = int(raw[0])
    return raw.reshape(-1, k + 1)[:, 1:]


def unit(x):
    x = np.array(x, dtype=np.float32, copy=True, order="C")
    n = np.linalg.norm(x, axis=1, keepdims=True)
    n[n == 0] = 1
    x /= n
    return x


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_mb(field="RssAnon"):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("engine", choices=["hnswlib", "faiss"])
    ap.add_argument("base")
    ap.add_argument("queries")
    ap.add_argument("truth")
    ap.add_argument("--n", type=int, default=0, help="use the first N base vectors (0: all)")
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--ef", default="10,20,40,80,160")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="runs per ef; the fastest counts")
    ap.add_argument("--serve", action="store_true",
                    help="after the build line, answer each EF read from stdin with one timed batch")
    a = ap.parse_args()

    base, dim = fvecs(a.base)
    if a.n > 0:
        base = base[: a.n]
    queries = unit(fvecs(a.queries)[0])
    truth = ivecs(a.truth)[:, : a.k]
    n = base.shape[0]
    chunk = 20000
    # Anonymous memory only: the mapped .fvecs pages the build reads are not the index.
    rss0 = rss_mb()

    t0, c0 = time.perf_counter(), cpu_s()
    last_note = [t0]

    def progress(done):
        # A build that is stopped (FAISS at 1 M takes hours here) still leaves its rate on record.
        now = time.perf_counter()
        if now - last_note[0] >= 60 or done == n:
            last_note[0] = now
            print(f"{a.engine} build: {done}/{n} added in {now - t0:.0f} s "
                  f"({done / (now - t0):.0f} items/s overall)", file=sys.stderr, flush=True)

    if a.engine == "hnswlib":
        import hnswlib

        idx = hnswlib.Index(space="ip", dim=dim)
        idx.init_index(max_elements=n, ef_construction=a.efc, M=a.M)
        idx.set_num_threads(a.build_threads)
        for i in range(0, n, chunk):
            j = min(n, i + chunk)
            idx.add_items(unit(base[i:j]), np.arange(i, j))
            progress(j)
        idx.set_num_threads(1)
    else:
        import faiss

        faiss.omp_set_num_threads(a.build_threads)
        idx = faiss.IndexHNSWFlat(dim, a.M, faiss.METRIC_INNER_PRODUCT)
        idx.hnsw.efConstruction = a.efc
        for i in range(0, n, chunk):
            j = min(n, i + chunk)
            idx.add(unit(base[i:j]))
            progress(j)
        faiss.omp_set_num_threads(1)
    build_s, build_cpu = time.perf_counter() - t0, cpu_s() - c0
    index_mb = rss_mb() - rss0

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    built = {"peer": a.engine, "n": n, "dim": dim, "k": a.k, "build_s": build_s, "build_cpu_s": build_cpu,
             "index_mb": index_mb, "peak_rss_mb": peak}

    def batch(ef):
        if a.engine == "hnswlib":
            idx.set_ef(max(ef, a.k))
        else:
            idx.hnsw.efSearch = max(ef, a.k)
        t0, c0 = time.perf_counter(), time.thread_time()
        if a.engine == "hnswlib":
            labels, _ = idx.knn_query(queries, k=a.k)
        else:
            _, labels = idx.search(queries, a.k)
        wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
        hit = sum(len(set(labels[i].tolist()) & set(truth[i].tolist())) for i in range(len(queries)))
        return {"ef": ef, "recall": hit / truth.size, "qps": len(queries) / wall,
                "cpu_qps": len(queries) / cpu if cpu > 0 else 0}

    if a.serve:
        print(json.dumps(built), flush=True)
        for line in sys.stdin:
            if line.strip():
                print(json.dumps(batch(int(line))), flush=True)
        return

    rows = []
    for ef in [int(e) for e in a.ef.split(",") if e]:
        runs = [batch(ef) for _ in range(a.repeat)]
        best = dict(runs[0], qps=max(r["qps"] for r in runs), cpu_qps=max(r["cpu_qps"] for r in runs))
        rows.append(best)
        print(f"{a.engine} ef={ef} recall={best['recall']:.4f} qps={best['qps']:.1f} "
              f"cpu_qps={best['cpu_qps']:.1f}", file=sys.stderr)
    print(json.dumps(dict(built, rows=rows)))


if __name__ == "__main__":
    main()
