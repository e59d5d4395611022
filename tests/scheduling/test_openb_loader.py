"""The openb trace loader reads the real files and names file, line and field on bad rows."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from kopilot.model import errors
from kopilot.traces import openb
from tests.paths import TRACES

DATA = TRACES / "alibaba-gpu-2023"
BUNDLED = Path(str(resources.files("kopilot") / "data"))
HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"


def test_reads_the_real_node_and_pod_lists() -> None:
    nodes = openb.load_nodes(BUNDLED / "openb_node_list_gpu_node.csv")
    assert len(nodes) == 1213
    assert sum(len(n.gpus) for n in nodes) == 6212
    pods = openb.load_pods(DATA / "openb_pod_list_gpuspec33.csv")
    assert len(pods) == 1000  # the sample's first 1,000 pods (tests/data/traces/SOURCE.txt)
    assert sum(1 for p in pods if p.pod.gpu_models) == 281
    shares = [p for p in pods if p.pod.request.gpu_milli]
    assert len(shares) == 329
    assert all(0 < p.pod.request.gpu_milli < 1000 and p.pod.request.gpus == 0 for p in shares)


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        ("p1,1000,1024,2,500,,LS,Running,0,,\n", "gpu_milli", "num_gpu == 1"),
        ("p1,abc,1024,1,1000,,LS,Running,0,,\n", "cpu_milli", "not an integer"),
        ("p1,1000,1024,0,300,,LS,Running,0,,\n", "gpu_milli", "must be 0"),
        ("p1,1000,1024,1,0,,LS,Running,0,,\n", "gpu_milli", "1..1000"),
        ("p1,1000,-5,1,1000,,LS,Running,0,,\n", "memory_mib", ">= 0"),
        ("p1,1000,1024,1,1000,|,LS,Running,0,,\n", "gpu_spec", "names no GPU model"),
        ("p1,1000,1024,1,1000,,LS,Running,x,,\n", "creation_time", "not a number"),
    ],
)
def test_a_bad_pod_row_names_file_line_and_field(
    tmp_path: Path, row: str, field: str, words: str
) -> None:
    path = tmp_path / "pods.csv"
    path.write_text(HEADER + "ok,1000,1024,1,500,,LS,Running,0,,\n" + row)
    with pytest.raises(errors.InvalidInputError) as caught:
        openb.load_pods(path)
    message = str(caught.value)
    assert f"{path}:3" in message
    assert repr(field) in message
    assert words in message


def test_a_missing_column_and_a_short_row_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "nodes.csv"
    path.write_text("sn,cpu_milli,gpu,model\nn1,1000,1,T4\n")
    with pytest.raises(errors.InvalidInputError, match="memory_mib"):
        openb.load_nodes(path)
    path.write_text("sn,cpu_milli,memory_mib,gpu,model\nn1,1000,1024\n")
    with pytest.raises(errors.InvalidInputError, match=r"nodes.csv, line 2: fewer fields"):
        openb.load_nodes(path)
    path.write_text("sn,cpu_milli,memory_mib,gpu,model\nn1,1000,1024,2,\n")
    with pytest.raises(errors.InvalidInputError, match=r"nodes.csv:2: field 'model'"):
        openb.load_nodes(path)
