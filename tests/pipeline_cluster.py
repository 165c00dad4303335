"""Multi-node check, run in its own process (it needs its own Ray cluster).

    python tests/pipeline_cluster.py VIDEO_DIR OUT_DIR

Starts a ``ray.cluster_utils.Cluster`` on this machine (a head and a second node, 1 CPU
each), then:

1. ``spread``: extracts the videos with 2 workers; the report says on which node each
   video ran.
2. ``remove``: extracts them again into a new store and removes the second node as soon
   as its worker has finished a video (so that its next video is in flight); the run
   must still complete.

Prints one JSON object with both reports' facts for tests/test_pipeline.py to check.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline_helpers import TINY_CONFIG


def main(video_dir: str, out_dir: str) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from talkit.pipelines.config import ExtractConfig
    from talkit.pipelines.plan import plan_videos
    from talkit.pipelines.progress import RunObserver
    from talkit.pipelines.run import ExtractJob, run_extraction

    out = Path(out_dir)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    second = cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
    second_id = second.node_id
    cfg = ExtractConfig.model_validate({**TINY_CONFIG, "num_workers": 2, "commit_every": 100})
    plan = plan_videos(video_dir)

    def facts(report: object) -> dict[str, object]:
        return {
            "extracted": [v.video_id for v in report.extracted],
            "nodes": {v.video_id: v.node_id for v in report.extracted},
            "failures": [f.to_dict() for f in report.failures],
            "workers": report.ray.get("workers"),
        }

    spread = run_extraction(ExtractJob(plan, str(out / "spread.store"), "synth", cfg))

    class RemoveNode(RunObserver):
        def __init__(self) -> None:
            self.removed = False
            self.retries: list[str] = []

        def on_video(self, done: object) -> None:
            # The worker that finished a video has its next one in flight: remove its node.
            if not self.removed and done.node_id == second_id:
                self.removed = True
                cluster.remove_node(second)

        def on_retry(self, video_id: str, reason: str) -> None:
            self.retries.append(video_id)

    observer = RemoveNode()
    removed = run_extraction(ExtractJob(plan, str(out / "remove.store"), "synth", cfg), observer)
    alive_after = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
    print(
        "RESULT "
        + json.dumps(
            {
                "nodes": nodes,
                "second": second_id,
                "spread": facts(spread),
                "remove": {**facts(removed), "retries": observer.retries},
                "alive_after": alive_after,
            }
        )
    )
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
