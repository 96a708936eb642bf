"""`--engine spark` on a real standalone cluster (master + worker started from the pyspark package on 127.0.0.1)
publishes the same gold tables as the default engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.spark import cluster
from tests.conftest import copy_home
from tests.test_spark_engine import assert_same_gold, published_versions

pytestmark = pytest.mark.spark


def test_spark_engine_on_a_standalone_cluster_publishes_the_default_engines_gold(
        planted_region_published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lake.spark import spark_session
    from quality.wap import run_one_map

    copy_home(planted_region_published, tmp_path / "home", monkeypatch)
    state = tmp_path / "spark-cluster"
    running = cluster.start(state, cores=2, memory="2g")
    try:
        monkeypatch.setenv("ONEMAP_SPARK_MASTER", running.master_url)
        spark = spark_session("cluster-test")
        assert spark.sparkContext.master == running.master_url
        run_one_map(engine="spark")
        assert len(running.workers()) == 1
        apps = list((state / "work").glob("app-*"))
        assert apps, "the build ran as an application on the cluster's worker"
        spark.stop()
    finally:
        cluster.stop(state)
    builds = published_versions()
    assert len(builds) == 2
    assert_same_gold(builds[0], builds[1])
    assert not (state / "master.pid").exists() and not (state / "worker.pid").exists()
